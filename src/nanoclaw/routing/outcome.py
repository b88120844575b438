"""What routing one event did: the rows written (``Delivery``) and the receipt for its sender."""

from __future__ import annotations

from dataclasses import dataclass, field

from nanoclaw.channels.base import RouteReceipt
from nanoclaw.routing.modes import DropReason


@dataclass(frozen=True)
class Delivery:
    session_id: str
    agent_group_id: str
    message_id: str
    seq: int
    trigger: int


_DROP_TEXTS: dict[str, str] = {
    DropReason.NO_AGENT_WIRED: "This chat is not wired to any agent.",
    DropReason.NO_AGENT_ENGAGED: "No agent in this chat engages with that message.",
    DropReason.UNKNOWN_SENDER_STRICT: "You are not allowed to talk to this agent.",
    DropReason.UNKNOWN_SENDER_REQUEST_APPROVAL: (
        "Your request to talk to this agent awaits approval."
    ),
    DropReason.SENDER_SCOPE: "Only known members may talk to this agent.",
    DropReason.CHANNEL_DENIED: "This chat was rejected by the operator.",
    DropReason.UNKNOWN_CHAT: "This chat is not known to NanoClaw.",
    DropReason.COMMAND_FILTERED: "That command is not available here.",
    DropReason.PERMISSION_DENIED: "Permission denied.",
    DropReason.STORAGE_FULL: "Not accepted: the assistant's disk is full. Please try again later.",
    DropReason.INTERNAL_ERROR: (
        "Not accepted: the assistant could not store your message. Please try again later."
    ),
}


@dataclass
class RouteOutcome:
    deliveries: list[Delivery] = field(default_factory=list)
    dropped: str | None = None  # a ``DropReason``, or the text of a routing error
    consumed: bool = False

    def receipt(self) -> RouteReceipt:
        waiting = tuple(d.message_id for d in self.deliveries if d.trigger)
        if self.deliveries or self.consumed:
            return RouteReceipt(len(self.deliveries), waiting, consumed=self.consumed)
        reason = str(self.dropped or DropReason.NO_AGENT_ENGAGED)
        return RouteReceipt(0, (), reason=reason, text=_DROP_TEXTS.get(reason, reason))
