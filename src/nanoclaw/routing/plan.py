"""A routing plan: what one inbound message will cause, decided before anything is done."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from nanoclaw.channels.base import InboundEvent
from nanoclaw.db.models import MessagingGroup, PendingApproval, Wiring
from nanoclaw.db.repository import Membership
from nanoclaw.routing.modes import DropReason, SessionMode


class ApprovalKind(StrEnum):
    UNKNOWN_SENDER = "unknown_sender"  # a card asking whether this sender may talk to an agent
    UNWIRED_CHAT = "unwired_chat"  # a card asking which agent a new chat connects to


@dataclass(frozen=True)
class PlannedWrite:
    """One ``messages_in`` row for one agent's session; ``trigger`` 1 also wakes its runner."""

    agent_group_id: str
    agent_folder: str
    session_id: str | None  # the active session found; None: the apply step creates one
    messaging_group_id: str
    thread_id: str | None  # the session's thread (per-thread mode only)
    mode: SessionMode
    message_id: str
    trigger: int

    @property
    def wakes(self) -> bool:
        return self.trigger == 1


@dataclass(frozen=True)
class PlannedDrop:
    """A row for the drop audit (``dropped_messages``)."""

    reason: DropReason
    agent_group_id: str | None = None


@dataclass(frozen=True)
class PlannedApproval:
    kind: ApprovalKind
    wiring: Wiring | None = None  # the wiring the unknown sender engaged (UNKNOWN_SENDER)


@dataclass(frozen=True)
class RoutePlan:
    """The router's decision for one event; ``PlanApplier`` carries it out.

    ``event`` is the event as routed (a thread id dropped on channels without threads). The
    host's chat commands are offered the message first when its chat is known
    (``messaging_group`` set); when they consume it, nothing else of the plan is applied.
    ``dropped`` is set exactly when no write is planned. ``open_cards`` are the chat's pending
    approval cards, read with the route's facts (for a sender with a user id), which the commands
    check a reply against.
    """

    event: InboundEvent
    user_id: str | None
    messaging_group: MessagingGroup | None = None
    membership: Membership | None = None
    writes: tuple[PlannedWrite, ...] = ()
    drops: tuple[PlannedDrop, ...] = ()
    approvals: tuple[PlannedApproval, ...] = ()
    replies: tuple[str, ...] = ()
    dropped: DropReason | None = None
    open_cards: tuple[PendingApproval, ...] = ()

    @property
    def offers_commands(self) -> bool:
        return self.messaging_group is not None

    @property
    def wakes(self) -> tuple[PlannedWrite, ...]:
        return tuple(w for w in self.writes if w.wakes)
