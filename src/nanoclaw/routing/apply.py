"""The effects of a routing plan, at the async edge: commands, drop audit, inbound write,
approvals, replies, wakes — exactly what the plan lists, in that order."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from nanoclaw.channels.base import InboundEvent
from nanoclaw.db.models import MessagingGroup, PendingApproval, Wiring
from nanoclaw.db.repository import DropRecord, Membership
from nanoclaw.executors import Executors
from nanoclaw.routing.outcome import RouteOutcome
from nanoclaw.routing.plan import ApprovalKind, RoutePlan
from nanoclaw.routing.write import InboundWriter


class Waker(Protocol):
    async def wake(self, session_id: str) -> bool: ...


class Replier(Protocol):
    async def reply(self, event: InboundEvent, text: str) -> None: ...


class DropAudit(Protocol):
    def record_drops(self, drops: Sequence[DropRecord]) -> None:
        """Blocking: count the drops in the audit, in one central transaction."""
        ...


class ApprovalSeam(Protocol):
    """Where the permissions issue plugs in its flows; the default only audits."""

    async def on_unknown_sender(
        self, event: InboundEvent, mg: MessagingGroup, wiring: Wiring, user_id: str | None
    ) -> None: ...

    async def on_unwired_chat(
        self, event: InboundEvent, mg: MessagingGroup, user_id: str | None
    ) -> None: ...


class HostCommands(Protocol):
    """Admin chat commands handled by the host; return True when the message was consumed."""

    async def handle(
        self,
        event: InboundEvent,
        mg: MessagingGroup,
        membership: Membership | None,
        open_cards: Sequence[PendingApproval],
    ) -> bool: ...


class NoApprovals:
    async def on_unknown_sender(
        self, event: InboundEvent, mg: MessagingGroup, wiring: Wiring, user_id: str | None
    ) -> None:
        return None

    async def on_unwired_chat(
        self, event: InboundEvent, mg: MessagingGroup, user_id: str | None
    ) -> None:
        return None


class PlanApplier:
    def __init__(
        self,
        *,
        executors: Executors,
        writer: InboundWriter,
        audit: DropAudit,
        waker: Waker,
        replier: Replier,
        approvals: ApprovalSeam | None = None,
        commands: HostCommands | None = None,
    ) -> None:
        self.executors = executors
        self.writer = writer
        self.audit = audit
        self.waker = waker
        self.replier = replier
        self.approvals: ApprovalSeam = approvals or NoApprovals()
        self.commands = commands

    async def apply(self, plan: RoutePlan) -> RouteOutcome:
        event, mg = plan.event, plan.messaging_group
        if (
            mg is not None
            and self.commands is not None
            and await self.commands.handle(event, mg, plan.membership, plan.open_cards)
        ):
            return RouteOutcome(consumed=True)  # the host's chat commands took the message
        if plan.drops:
            records = [
                DropRecord(
                    channel_type=event.channel_type,
                    platform_id=event.platform_id,
                    reason=drop.reason,
                    user_id=plan.user_id,
                    sender_name=event.message.sender_name,
                    messaging_group_id=mg.id if mg is not None else None,
                    agent_group_id=drop.agent_group_id,
                    text=event.message.text,
                )
                for drop in plan.drops
            ]
            await self.executors.central.run(self.audit.record_drops, records)
        deliveries = []
        if plan.writes:
            deliveries = await self.writer.write(event, plan.writes, plan.user_id)
        if mg is not None:
            for approval in plan.approvals:
                if approval.kind == ApprovalKind.UNKNOWN_SENDER and approval.wiring is not None:
                    await self.approvals.on_unknown_sender(event, mg, approval.wiring, plan.user_id)
                elif approval.kind == ApprovalKind.UNWIRED_CHAT:
                    await self.approvals.on_unwired_chat(event, mg, plan.user_id)
        for text in plan.replies:
            await self.replier.reply(event, text)
        # Fanned-out sessions start side by side, not one after another.
        await asyncio.gather(*(self.waker.wake(d.session_id) for d in deliveries if d.trigger))
        return RouteOutcome(deliveries=deliveries, dropped=plan.dropped)
