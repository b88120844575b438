"""The host: builds every component once, starts and stops every loop, and owns their tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from nanoclaw.channels.base import ChannelAdapter, ChannelSetup, InboundEvent, RouteReceipt
from nanoclaw.channels.cli.adapter import CliAdapter
from nanoclaw.channels.registry import ChannelRegistry
from nanoclaw.contract.timeutil import now_iso
from nanoclaw.db.central import CentralDB
from nanoclaw.db.models import SessionRow
from nanoclaw.db.repository import Repository
from nanoclaw.db.sqlite import EngineCache
from nanoclaw.delivery.actions import ActionResult, SystemActions
from nanoclaw.delivery.loop import DeliveryLoop
from nanoclaw.permissions.setup import build_permissions
from nanoclaw.routing.router import Router
from nanoclaw.runtime.base import RunnerExit, RunnerRuntime
from nanoclaw.runtime.select import select_runtime
from nanoclaw.runtime.supervisor import Supervisor
from nanoclaw.sessions.outbound_reader import OutboundRow, SessionReader
from nanoclaw.sessions.service import SessionService
from nanoclaw.sessions.store import SessionStore
from nanoclaw.settings import Settings

log = logging.getLogger("nanoclaw.host")


class _AdapterReplier:
    """Sends host replies (denials, notices) straight through the event's adapter."""

    def __init__(self, channels: ChannelRegistry) -> None:
        self.channels = channels

    async def reply(self, event: InboundEvent, text: str) -> None:
        from nanoclaw.channels.base import OutboundPayload

        adapter = self.channels.get(event.channel_type)
        if adapter is None:
            log.warning("no adapter to reply on %s", event.channel_type)
            return
        try:
            await adapter.deliver(
                event.platform_id, event.thread_id, OutboundPayload(kind="chat", content={"text": text})
            )
        except Exception:
            log.exception("host reply on %s/%s failed", event.channel_type, event.platform_id)


class Host:
    def __init__(
        self,
        *,
        settings: Settings,
        runtime: RunnerRuntime | None = None,
        adapters: Sequence[ChannelAdapter] | None = None,
    ) -> None:
        self.settings = settings
        self.db = CentralDB(path=settings.central_db_path, migrations_root=settings.migrations_path)
        self.repo = Repository(self.db)
        self.engines = EngineCache()
        self.store = SessionStore(
            sessions_root=settings.sessions_path,
            migrations_root=settings.migrations_path,
            engines=self.engines,
        )
        self.reader = SessionReader(engines=self.engines)
        self.sessions = SessionService(repo=self.repo, store=self.store)
        self.runtime = runtime or select_runtime(settings).runtime
        self.supervisor = Supervisor(
            settings=settings,
            runtime=self.runtime,
            repo=self.repo,
            sessions=self.sessions,
            reader=self.reader,
        )
        self.channels = ChannelRegistry()
        self.cli = CliAdapter(socket_path=settings.cli_socket)
        for adapter in [self.cli, *(adapters or [])]:
            self.channels.add(adapter)
        self.actions = SystemActions()
        self.actions.register("notify_agent", self._notify_agent_action)
        self.delivery = DeliveryLoop(
            settings=settings,
            repo=self.repo,
            sessions=self.sessions,
            reader=self.reader,
            channels=self.channels,
            actions=self.actions,
            wake=self._wake_soon,
            running_sessions=self.supervisor.running_sessions,
            note_activity=self.supervisor.note_activity,
        )
        self.permissions = build_permissions(self)  # approvals, admin chat commands, action gate
        self.router = Router(
            repo=self.repo,
            sessions=self.sessions,
            waker=self.supervisor,
            replier=_AdapterReplier(self.channels),
            approvals=self.permissions.approvals,
            commands=self.permissions.commands,
            threaded_channels=self.channels.threaded(),
        )
        self.permissions.bind(self, self.router)
        self.supervisor.on_exit(self._on_runner_exit)
        self.delivery.on_turn_done(self._on_turn_done)
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = False

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._started:
            raise RuntimeError("host already started")
        self._started = True
        await asyncio.to_thread(self.db.migrate)
        await self.supervisor.start()
        for adapter in self.channels.all():
            await self._setup_adapter(adapter)
        self._spawn(self.delivery.run(), "delivery")
        self._spawn(self.permissions.approvals.run_expiry(), "approval-expiry")
        await self._recover()
        log.info("host up (install %s, runtime %s)", self.settings.install_id, self.runtime.name)

    async def stop(self) -> None:
        for adapter in self.channels.all():
            with contextlib.suppress(Exception):
                await adapter.teardown()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.supervisor.close()
        self.db.dispose()
        log.info("host stopped")

    def _spawn(self, coro: object, name: str) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s died", task.get_name(), exc_info=task.exception())

    async def _setup_adapter(self, adapter: ChannelAdapter) -> None:
        try:
            await adapter.setup(ChannelSetup(on_inbound=self.on_inbound))
        except Exception:
            # A failing adapter never stops the host.
            log.exception("channel %s failed to start", adapter.name)

    async def _recover(self) -> None:
        """After a restart: deliver what runners wrote while we were down, wake due work."""
        sessions = await asyncio.to_thread(self.repo.sessions)
        for session in sessions:
            self.delivery.watch(session.id)
            layout = self.sessions.layout(session)
            try:
                due = await asyncio.to_thread(self.reader.has_due_trigger, layout, now=now_iso())
            except Exception:
                log.exception("session %s unreadable at start-up", session.id)
                continue
            if due:
                await self.supervisor.wake(session.id)

    # -- callbacks -------------------------------------------------------------------------------
    async def on_inbound(self, event: InboundEvent) -> RouteReceipt:
        outcome = await self.router.route(event)
        return outcome.receipt()

    def _wake_soon(self, session_id: str) -> None:
        self._spawn(self._wake(session_id), f"wake-{session_id}")

    async def _wake(self, session_id: str) -> None:
        await self.supervisor.wake(session_id)

    async def _on_runner_exit(self, session_id: str, result: RunnerExit) -> None:
        self.delivery.watch(session_id)  # one last drain of what it wrote

    async def _on_turn_done(self, session_id: str, message_ids: frozenset[str]) -> None:
        await self.cli.turn_done(message_ids)

    async def _notify_agent_action(self, session: SessionRow, row: OutboundRow) -> ActionResult:
        return ActionResult("error", str(row.content.get("text") or "notice"))
