"""The router (upstream §3): plan an event in one central-DB transaction, then apply the plan.

``RoutePlanner`` decides (messaging group → wirings → engage/access/scope → sessions) and
``PlanApplier`` carries the decision out: one ``messages_in`` row per engaged agent in that
agent's session and a wake; ``accumulate`` wirings get context rows (trigger=0) that never wake
a runner. What is not delivered is recorded in the drop audit with its reason.
"""

from __future__ import annotations

import logging

from nanoclaw.channels.base import InboundEvent
from nanoclaw.db.repository import Repository
from nanoclaw.errors import NanoclawError
from nanoclaw.executors import Executors
from nanoclaw.routing.apply import ApprovalSeam, HostCommands, PlanApplier, Replier, Waker
from nanoclaw.routing.modes import DropReason
from nanoclaw.routing.outcome import RouteOutcome
from nanoclaw.routing.plan import RoutePlan
from nanoclaw.routing.planner import RoutePlanner
from nanoclaw.routing.unhandled import UnhandledInbound
from nanoclaw.routing.write import SessionInboundWriter
from nanoclaw.sessions.activity import SessionActivity
from nanoclaw.sessions.service import SessionService
from nanoclaw.sessions.writes import SessionWrites
from nanoclaw.storage_errors import is_disk_full

log = logging.getLogger("nanoclaw.router")


class Router:
    def __init__(
        self,
        *,
        executors: Executors,
        repo: Repository,
        sessions: SessionService,
        activity: SessionActivity,
        waker: Waker,
        replier: Replier,
        approvals: ApprovalSeam | None = None,
        commands: HostCommands | None = None,
        threaded_channels: frozenset[str] = frozenset(),
        unhandled: UnhandledInbound | None = None,
        writes: SessionWrites | None = None,
    ) -> None:
        self.executors = executors
        self.unhandled = unhandled  # records a failed message, tells its sender, logs once
        self.planner = RoutePlanner(repo=repo, threaded_channels=threaded_channels)
        self.applier = PlanApplier(
            executors=executors,
            writer=SessionInboundWriter(
                executors=executors, sessions=sessions, activity=activity, writes=writes
            ),
            audit=repo,
            waker=waker,
            replier=replier,
            approvals=approvals,
            commands=commands,
        )

    def plan(self, event: InboundEvent) -> RoutePlan:
        """The decision alone (blocking: one central-DB transaction)."""
        return self.planner.plan(event)

    async def route(self, event: InboundEvent) -> RouteOutcome:
        """Route one event. Errors are logged and reported, never raised into the adapter."""
        try:
            plan = await self.executors.central.run(self.planner.plan, event)
            return await self.applier.apply(plan)
        except NanoclawError as exc:
            log.warning("route failed for %s/%s: %s", event.channel_type, event.platform_id, exc)
            return RouteOutcome(dropped=str(exc))
        except Exception as exc:
            # A full disk or a damaged DB: the sender is told the message was not accepted
            # (never a silently closed connection); nothing was acknowledged, so nothing is lost.
            if is_disk_full(exc):
                log.error(
                    "not accepted (disk full) for %s/%s", event.channel_type, event.platform_id
                )
                return RouteOutcome(dropped=DropReason.STORAGE_FULL)
            if self.unhandled is not None:
                await self.unhandled.handle(event, exc)
            else:
                log.exception("route failed for %s/%s", event.channel_type, event.platform_id)
            return RouteOutcome(dropped=DropReason.INTERNAL_ERROR)
