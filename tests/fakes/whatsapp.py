"""A recording fake of neonize's async client (``NewAClient``) for the WhatsApp adapter.

Events are neonize's own proto types parsed from the JSON fixtures in
``tests/fixtures/whatsapp/`` (``json_format.ParseDict``; every proto2 required field is
checked with ``IsInitialized``), delivered to the handlers the adapter registered through
``client.event(EventType)(handler)``, as neonize's Go thread does. Sends answer a
``neonize.SendResponse`` fixture with a fresh message id. The fake models what the platform
enforces: media downloads need the media's ``directPath`` to be known (else neonize's
``DownloadError``), a reaction needs the reacted message's sender, and an unlinked session
gets a QR event instead of ``Connected``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from neonize.proto import Neonize_pb2 as npb
from neonize.proto.waCommon.WACommon_pb2 import MessageKey
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (
    ContextInfo,
    ExtendedTextMessage,
    ReactionMessage,
)
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message as E2EMessage

from nanoclaw.channels.whatsapp.inbound import jid_text
from tests.fakes.call_log import CallLog
from tests.fakes.fixtures import fixture

EventHandler = Callable[[Any, Any], Any]


def parse(name: str, kind: Any = npb.Message) -> Any:
    """A fixture as the neonize proto type it names; all required fields must be present."""
    value = json_format.ParseDict(fixture("whatsapp", name), kind())
    if not value.IsInitialized():
        raise ValueError(f"fixture {name}: missing {value.FindInitializationErrors()}")
    return value


class DownloadError(Exception):
    """What neonize raises when the media cannot be fetched."""


@dataclass
class Call:
    method: str
    args: dict[str, Any]


class FakeEvents:
    """``client.event``: the handlers by event type, and the QR callback."""

    def __init__(self) -> None:
        self.handlers: dict[type[Any], EventHandler] = {}
        self.qr_handler: Callable[[Any, bytes], Any] | None = None

    def __call__(self, event: Any) -> Callable[[EventHandler], None]:
        def register(handler: EventHandler) -> None:
            self.handlers[event] = handler

        return register

    def qr(self, f: Callable[[Any, bytes], Any]) -> None:
        self.qr_handler = f


@dataclass
class FakeWhatsApp(CallLog):
    """One linked (or not yet linked) device."""

    linked: bool = True
    calls: list[Call] = field(default_factory=list)
    media: dict[str, bytes] = field(default_factory=dict)  # directPath → decrypted bytes
    sessions: list[Path] = field(default_factory=list)  # the session paths clients opened
    pair_code: str = "ABCD-EFGH"
    accepts_by: str | None = None  # "qr": the user scans the code; "code": types the pair code
    refuses: str | None = None  # WhatsApp refuses the scanned link with this reason
    # What the people on the other end do once a linked session connects (run as a task).
    after_login: Callable[[FakeWhatsApp], Awaitable[None]] | None = None

    def __post_init__(self) -> None:
        self.event = FakeEvents()
        self._changed = asyncio.Event()
        self._ids = itertools.count(1)
        self.connected = False
        self._phone: asyncio.Task[None] | None = None

    def factory(self, session: Path) -> FakeWhatsApp:
        """The adapter's ``client_factory``."""
        self.sessions.append(session)
        return self

    def _record(self, method: str, **args: Any) -> None:
        self.calls.append(Call(method, args))
        self._changed.set()

    def _response(self) -> Any:
        response = parse("send_response", npb.SendResponse)
        response.ID = f"3EB0FA4E{next(self._ids):012d}"
        return response

    def sent(self) -> list[Call]:
        """Every call that put a message into a chat, in order."""
        kinds = {"send_message", "send_image", "send_document"}
        return [c for c in self.calls if c.method in kinds]

    # -- events -----------------------------------------------------------------------------------
    async def emit(self, event: Any) -> None:
        handler = self.event.handlers.get(type(event))
        if handler is None:
            raise AssertionError(f"no handler registered for {type(event).__name__}")
        await handler(self, event)

    async def emit_fixture(self, name: str, kind: Any = npb.Message) -> Any:
        event = parse(name, kind)
        await self.emit(event)
        return event

    async def show_qr(self) -> None:
        codes = parse("qr_codes", npb.QR).Codes
        assert self.event.qr_handler is not None, "no QR callback registered"
        await self.event.qr_handler(self, codes[0].encode())
        if self.accepts_by == "qr":
            self._accept_on_phone()
        elif self.refuses is not None:
            self._phone = asyncio.ensure_future(self.refuse_pairing(self.refuses))

    def _accept_on_phone(self) -> None:
        """The phone completes the link, later and on its own (as the user acts)."""
        self._phone = asyncio.ensure_future(self.complete_pairing())

    async def complete_pairing(self) -> None:
        """The phone accepted the link: PairStatus SUCCESS, then Connected."""
        self.linked = True
        await self.emit_fixture("pair_status_success", npb.PairStatus)
        await self._connected()

    async def refuse_pairing(self, reason: str) -> None:
        """The pairing failed on WhatsApp's side: PairStatus ERROR with its reason."""
        status = parse("pair_status_success", npb.PairStatus)
        status.Status = npb.PairStatus.PStatus.ERROR
        status.Error = reason
        await self.emit(status)

    async def _connected(self) -> None:
        self.connected = True
        await self.emit_fixture("connected", npb.Connected)

    # -- the client surface (neonize's names) --------------------------------------------------
    async def connect(self) -> None:
        """neonize opens (creates) its SQLite store at the session path, then logs in or shows QR."""
        self._record("connect")
        if self.sessions:
            self.sessions[-1].parent.mkdir(parents=True, exist_ok=True)
            self.sessions[-1].touch()
        if self.linked:
            await self._connected()
            if self.after_login is not None:
                self._phone = asyncio.ensure_future(self.after_login(self))
        elif self.event.qr_handler is not None:
            await self.show_qr()

    async def disconnect(self) -> None:
        self._record("disconnect")
        self.connected = False

    async def get_me(self) -> Any:
        self._record("get_me")
        return parse("device_me", npb.Device)

    async def PairPhone(self, phone: str, show_push_notification: bool) -> str:  # noqa: N802
        self._record("PairPhone", phone=phone, show_push_notification=show_push_notification)
        if self.accepts_by == "code":
            self._accept_on_phone()
        return self.pair_code

    async def send_message(self, to: Any, message: Any) -> Any:
        if isinstance(message, str):
            message = E2EMessage(conversation=message)
        self._record("send_message", to=jid_text(to), message=message)
        return self._response()

    async def build_reply_message(self, message: str, quoted: Any) -> Any:
        """As neonize: the text as extendedTextMessage whose contextInfo quotes ``quoted``."""
        self._record("build_reply_message", message=message, quoted=quoted.Info.ID)
        context = ContextInfo(
            stanzaID=quoted.Info.ID,
            participant=jid_text(quoted.Info.MessageSource.Sender),
            quotedMessage=quoted.Message,
        )
        return E2EMessage(
            extendedTextMessage=ExtendedTextMessage(text=message, contextInfo=context)
        )

    async def send_image(
        self, to: Any, file: bytes, caption: str | None = None, quoted: Any = None
    ) -> Any:
        self._record("send_image", to=jid_text(to), file=file, caption=caption)
        return self._response()

    async def send_document(
        self,
        to: Any,
        file: bytes,
        caption: str | None = None,
        title: str | None = None,
        filename: str | None = None,
        mimetype: str | None = None,
        quoted: Any = None,
    ) -> Any:
        self._record(
            "send_document", to=jid_text(to), file=file, filename=filename, mimetype=mimetype
        )
        return self._response()

    async def send_chat_presence(self, jid: Any, state: Any, media: Any) -> None:
        self._record("send_chat_presence", to=jid_text(jid), state=state, media=media)

    async def build_reaction(self, chat: Any, sender: Any, message_id: str, reaction: str) -> Any:
        if not jid_text(sender):
            raise ValueError("a reaction needs the reacted message's sender")
        self._record("build_reaction", chat=jid_text(chat), sender=jid_text(sender), id=message_id)
        key = MessageKey(
            remoteJID=jid_text(chat), fromMe=False, ID=message_id, participant=jid_text(sender)
        )
        return E2EMessage(
            reactionMessage=ReactionMessage(key=key, text=reaction, senderTimestampMS=0)
        )

    async def download_any(self, message: Any) -> bytes:
        for field_name in ("imageMessage", "documentMessage", "audioMessage", "videoMessage"):
            if message.HasField(field_name):
                path = getattr(message, field_name).directPath
                self._record("download_any", kind=field_name, direct_path=path)
                if path not in self.media:
                    raise DownloadError(f"download failed with status code 404 ({path})")
                return self.media[path]
        raise DownloadError("no media in message")
