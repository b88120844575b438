"""Fakes for the router's collaborators; each records its calls."""

from __future__ import annotations

from dataclasses import dataclass, field

from nanoclaw.channels.base import InboundEvent
from nanoclaw.db.models import MessagingGroup, Wiring


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
    unwired_chats: list[str] = field(default_factory=list)

    async def on_unknown_sender(
        self, event: InboundEvent, mg: MessagingGroup, wiring: Wiring, user_id: str | None
    ) -> None:
        self.unknown_senders.append((mg.platform_id, user_id))

    async def on_unwired_chat(
        self, event: InboundEvent, mg: MessagingGroup, user_id: str | None
    ) -> None:
        self.unwired_chats.append(mg.platform_id)
