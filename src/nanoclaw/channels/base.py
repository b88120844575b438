"""The adapter contract (upstream §11) and the plain events that cross into routing.

Adapters know nothing of agents or sessions: they turn platform events into
``InboundEvent`` values and deliver ``OutboundPayload`` values.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Attachment:
    name: str
    mime: str | None = None
    data: bytes | None = None  # inline bytes, saved into the session inbox by the router
    url: str | None = None


@dataclass(frozen=True)
class ReplyTo:
    """The message an inbound message replies to or quotes, as far as the platform tells."""

    id: str  # the replied-to message's platform id (in the same chat)
    text: str | None = None  # its text, when the platform includes it
    sender: str | None = None  # its sender's display name or handle, when known

    def to_dict(self) -> dict[str, str | None]:
        return {"id": self.id, "text": self.text, "sender": self.sender}


@dataclass(frozen=True)
class InboundMessage:
    id: str  # the platform's message id, unique within the chat
    text: str
    sender: str  # the platform handle
    sender_name: str | None = None
    is_mention: bool = False
    is_group: bool = False
    timestamp: str | None = None
    attachments: tuple[Attachment, ...] = ()
    kind: str = "chat"
    reply_to: ReplyTo | None = None


@dataclass(frozen=True)
class InboundEvent:
    channel_type: str
    platform_id: str
    thread_id: str | None
    message: InboundMessage


@dataclass(frozen=True)
class OutboundFile:
    filename: str
    data: bytes


@dataclass(frozen=True)
class OutboundPayload:
    kind: str
    content: dict[str, Any]
    files: tuple[OutboundFile, ...] = ()
    sender_name: str | None = None  # the sending agent's name (None: the host itself)
    # Names one outbound row for good (``<session id>/<row id>``): a channel that can keep it
    # (the terminal's backlog) stores a re-send after a host crash once, not twice.
    delivery_key: str | None = None

    @property
    def text(self) -> str:
        return str(self.content.get("text") or "")


@dataclass(frozen=True)
class RouteReceipt:
    """What the router tells the adapter about one inbound event."""

    delivered_to: int  # how many agents got the message
    waiting_ids: tuple[str, ...]  # inbound ids whose turn will answer (trigger=1)
    consumed: bool = False  # handled by the host itself (an admin command)
    reason: str | None = None  # why nothing was delivered
    text: str | None = None  # a human explanation of ``reason``

    def to_frame(self, client_id: str) -> dict[str, Any]:
        if self.delivered_to or self.consumed:
            return {
                "type": "accepted",
                "id": client_id,
                "agents": self.delivered_to,
                "waiting": list(self.waiting_ids),
            }
        return {"type": "notice", "id": client_id, "reason": self.reason, "text": self.text}


InboundHandler = Callable[[InboundEvent], Awaitable[RouteReceipt | None]]
# (question_id, value, user_id) → a short confirmation for the clicker, or None.
# ``user_id`` is the NanoClaw user id ``<channel_type>:<handle>`` (see ``user_id_of``).
ActionCallback = Callable[[str, str, str], Awaitable[str | None]]
# (channel_type, old platform id, new platform id): a Telegram group upgraded to a supergroup.
MigrateCallback = Callable[[str, str, str], Awaitable[None]]


def user_id_of(channel_type: str, handle: str) -> str:
    """The NanoClaw user id of a platform handle (handles that carry a ``:`` are kept)."""
    return handle if ":" in handle else f"{channel_type}:{handle}"


@dataclass(frozen=True)
class CardOption:
    label: str
    value: str


@dataclass(frozen=True)
class Card:
    """An approval or question card: buttons where the channel has them, else numbered text.

    Delivered as ``OutboundPayload(kind="card", content={"text": card.fallback_text(),
    "card": card.to_dict()})``. A click comes back through ``ChannelSetup.on_action``;
    without buttons the user replies with the option's number.
    """

    question_id: str
    title: str
    question: str
    options: tuple[CardOption, ...]

    def fallback_text(self) -> str:
        lines = [self.title, "", self.question, ""]
        lines += [f"{n}. {o.label}" for n, o in enumerate(self.options, start=1)]
        lines += ["", "Reply with the number of your choice."]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "question_id": self.question_id,
            "title": self.title,
            "question": self.question,
            "options": [{"label": o.label, "value": o.value} for o in self.options],
        }

    def payload(self) -> OutboundPayload:
        return OutboundPayload(
            kind="card", content={"text": self.fallback_text(), "card": self.to_dict()}
        )


class LinkState(enum.StrEnum):
    """How an adapter's connection to its platform really is (shown by status and doctor)."""

    CONNECTED = "connected"
    RECONNECTING = "reconnecting"  # the link dropped and reconnects are failing
    CONFLICT = "conflict"  # another consumer holds the platform's update stream (Telegram 409)
    DISCONNECTED = "disconnected"


@dataclass(frozen=True)
class Health:
    state: LinkState
    detail: str = ""


@dataclass
class ChannelSetup:
    on_inbound: InboundHandler
    extra: dict[str, Any] = field(default_factory=dict)
    on_action: ActionCallback | None = None  # card button clicks
    on_migrate: MigrateCallback | None = None  # a chat that moved to a new platform id


class ChannelAdapter(abc.ABC):
    name: str
    channel_type: str
    supports_threads: bool = False
    supports_buttons: bool = False  # renders ``kind="card"`` payloads with buttons
    max_text_length: int | None = None

    @abc.abstractmethod
    async def setup(self, setup: ChannelSetup) -> None: ...

    @abc.abstractmethod
    async def teardown(self) -> None: ...

    @abc.abstractmethod
    def is_connected(self) -> bool: ...

    def health(self) -> Health:
        """The link's real state; adapters with more to say than up/down override this."""
        return Health(LinkState.CONNECTED if self.is_connected() else LinkState.DISCONNECTED)

    @abc.abstractmethod
    async def deliver(
        self, platform_id: str, thread_id: str | None, payload: OutboundPayload
    ) -> str | None:
        """Send; return the platform message id. Raise ``DeliveryError`` on failure."""

    async def set_typing(self, platform_id: str, thread_id: str | None, on: bool) -> None:
        return None

    async def open_dm(self, handle: str) -> str | None:
        """The platform id of a private chat with ``handle`` (default: the handle itself)."""
        return handle


def split_text(text: str, limit: int | None) -> list[str]:
    """Split at ``limit`` on paragraph, then line, then word boundaries, then hard; never truncate."""
    if limit is None or len(text) <= limit:
        return [text]
    chunks: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit]
        cut = -1
        for sep in ("\n\n", "\n", " "):
            at = window.rfind(sep)
            if at > 0:
                cut = at
                break
        if cut <= 0:
            cut = limit
        chunks.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        chunks.append(rest)
    return chunks
