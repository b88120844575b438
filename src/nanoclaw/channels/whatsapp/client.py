"""The part of neonize's async client the adapter uses, as a protocol a recording fake can fill.

The method names and arguments are neonize's own (``neonize.aioze.client.NewAClient``), so the
real client satisfies the protocol as it is; the proto values crossing it are neonize's types
(``Any`` here: neonize ships no type hints). ``new_client`` is the one place neonize is imported.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from nanoclaw.errors import ConfigError

EventHandler = Callable[[Any, Any], Awaitable[None]]  # (client, event proto)
QrHandler = Callable[[Any, bytes], Awaitable[None]]  # (client, QR code string as bytes)


class EventRegistry(Protocol):
    """``client.event``: ``event(EventType)(handler)`` registers; ``event.qr(handler)`` too."""

    def __call__(self, event: Any) -> Callable[[EventHandler], None]: ...

    def qr(self, f: QrHandler) -> None: ...


class WhatsAppClient(Protocol):
    @property
    def event(self) -> EventRegistry: ...

    async def connect(self) -> Any: ...

    async def disconnect(self) -> None: ...

    async def get_me(self) -> Any: ...  # neonize Device (JID, LID, PushName)

    async def PairPhone(self, phone: str, show_push_notification: bool) -> str: ...  # noqa: N802

    async def send_message(self, to: Any, message: Any) -> Any: ...  # → SendResponse

    async def build_reply_message(self, message: str, quoted: Any) -> Any: ...  # → waE2E.Message

    async def send_image(
        self, to: Any, file: bytes, caption: str | None = None, quoted: Any = None
    ) -> Any: ...

    async def send_document(
        self,
        to: Any,
        file: bytes,
        caption: str | None = None,
        title: str | None = None,
        filename: str | None = None,
        mimetype: str | None = None,
        quoted: Any = None,
    ) -> Any: ...

    async def send_chat_presence(self, jid: Any, state: Any, media: Any) -> None: ...

    async def build_reaction(
        self, chat: Any, sender: Any, message_id: str, reaction: str
    ) -> Any: ...  # → waE2E.Message

    async def download_any(self, message: Any) -> bytes: ...


ClientFactory = Callable[[Path], WhatsAppClient]


def new_client(session: Path) -> WhatsAppClient:
    """A real neonize client keeping its keys in ``session`` (a SQLite file neonize writes)."""
    try:
        from neonize.aioze.client import NewAClient
    except ImportError as exc:
        raise ConfigError(
            f"WhatsApp needs neonize: pip install 'nanoclaw[whatsapp]' ({exc})"
        ) from None
    import neonize.aioze.events as neonize_events

    # neonize dispatches its Go thread's events to a process-wide loop that ``connect`` sets
    # only once; `channels add whatsapp` links in one event loop and runs a host in the next.
    neonize_events.event_global_loop = None
    session.parent.mkdir(parents=True, exist_ok=True)
    client: WhatsAppClient = NewAClient(str(session))
    return client
