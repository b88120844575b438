"""Fakes for the router's collaborators; each records its calls."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from nanoclaw.channels.base import InboundEvent
from nanoclaw.db.models import MessagingGroup, PendingApproval, Wiring
from nanoclaw.db.repository import DropRecord, Membership
from nanoclaw.routing.outcome import Delivery
from nanoclaw.routing.plan import PlannedWrite


@dataclass
class RecordingWaker:
    woken: list[str] = field(default_factory=list)

    async def wake(self, session_id: str) -> bool:
        self.woken.append(session_id)
        return True


@dataclass
class RecordingReplier:
    replies: list[tuple[str, str]] = field(default_factory=list)  # (platform_id, text)

    async def reply(self, event: InboundEvent, text: str) -> None:
        self.replies.append((event.platform_id, text))


@dataclass
class RecordingApprovals:
    unknown_senders: list[tuple[str, str | None]] = field(default_factory=list)
    unknown_sender_wirings: list[str] = field(default_factory=list)  # wiring ids
    unwired_chats: list[str] = field(default_factory=list)

    async def on_unknown_sender(
        self, event: InboundEvent, mg: MessagingGroup, wiring: Wiring, user_id: str | None
    ) -> None:
        self.unknown_senders.append((mg.platform_id, user_id))
        self.unknown_sender_wirings.append(wiring.id)

    async def on_unwired_chat(
        self, event: InboundEvent, mg: MessagingGroup, user_id: str | None
    ) -> None:
        self.unwired_chats.append(mg.platform_id)


@dataclass
class RecordingWriter:
    """An ``InboundWriter`` that writes nothing: each planned row becomes a delivery."""

    writes: list[PlannedWrite] = field(default_factory=list)

    async def write(
        self, event: InboundEvent, writes: Sequence[PlannedWrite], user_id: str | None
    ) -> list[Delivery]:
        out: list[Delivery] = []
        for planned in writes:
            self.writes.append(planned)
            session_id = planned.session_id or f"new-{planned.agent_group_id}"
            out.append(
                Delivery(
                    session_id,
                    planned.agent_group_id,
                    planned.message_id,
                    len(self.writes),
                    planned.trigger,
                )
            )
        return out


@dataclass
class RecordingAudit:
    drops: list[DropRecord] = field(default_factory=list)

    def record_drops(self, drops: Sequence[DropRecord]) -> None:
        self.drops.extend(drops)


@dataclass
class RecordingCommands:
    consume: bool = False
    seen: list[str] = field(default_factory=list)  # message texts offered
    cards: list[list[str]] = field(default_factory=list)  # ids of the open cards offered with each

    async def handle(
        self,
        event: InboundEvent,
        mg: MessagingGroup,
        membership: Membership | None,
        open_cards: Sequence[PendingApproval],
    ) -> bool:
        self.seen.append(event.message.text)
        self.cards.append([card.id for card in open_cards])
        return self.consume
