"""The host: builds every component once, starts and stops every loop, and owns their tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Sequence
from typing import Any

from nanoclaw.channels.base import ChannelAdapter, ChannelSetup, InboundEvent, RouteReceipt
from nanoclaw.channels.card_actions import CardActions, QuestionAnswers
from nanoclaw.channels.cli.adapter import CliAdapter
from nanoclaw.channels.pairing import PAIRING_FILE, Pairer, PairingCodes
from nanoclaw.channels.registry import STATE_FILE, ChannelRegistry, build_adapters
from nanoclaw.channels.typing import TypingKeeper
from nanoclaw.db.central import CentralDB
from nanoclaw.db.models import SessionRow
from nanoclaw.db.repository import Repository
from nanoclaw.db.sqlite import EngineCache
from nanoclaw.delivery.actions import ActionResult, SystemActions
from nanoclaw.delivery.agent_actions import AgentActions
from nanoclaw.delivery.loop import DeliveryLoop
from nanoclaw.delivery.notices import NoticeOutbox, Notifier
from nanoclaw.delivery.task_actions import TaskActions
from nanoclaw.permissions.setup import build_permissions
from nanoclaw.routing.router import RouteOutcome, Router
from nanoclaw.runtime.base import RunnerExit, RunnerRuntime
from nanoclaw.runtime.sandbox import SandboxServices, build_proxy
from nanoclaw.runtime.select import select_runtime
from nanoclaw.runtime.supervisor import Supervisor
from nanoclaw.scheduling.script_results import ScriptResults
from nanoclaw.sessions.outbound_reader import OutboundRow, SessionReader
from nanoclaw.sessions.service import SessionService
from nanoclaw.sessions.store import SessionStore
from nanoclaw.settings import Settings
from nanoclaw.sweep.loop import Sweep
from nanoclaw.usage.budget import BudgetGuard
from nanoclaw.usage.ledger import UsageLedger

log = logging.getLogger("nanoclaw.host")


class NoticeReplier:
    """Sends host replies (denials, command answers) to the event's chat through the outbox."""

    def __init__(self, notices: Notifier) -> None:
        self.notices = notices

    async def reply(self, event: InboundEvent, text: str) -> None:
        await self.notices.notify(event.channel_type, event.platform_id, event.thread_id, text)


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
        self.sandbox = SandboxServices(  # credential proxy, per-runner tokens, extra mounts
            settings=settings,
            repo=self.repo,
            default_runtime=self.runtime.name,
            proxy=build_proxy(settings),
        )
        self.supervisor = Supervisor(
            settings=settings,
            runtime=self.runtime,
            repo=self.repo,
            sessions=self.sessions,
            reader=self.reader,
            spec_hook=self.sandbox.spec_hook,
        )
        self.channels = ChannelRegistry(
            state_path=settings.data_path / STATE_FILE,
            retry_delays_s=settings.channel_retry_delays_s,
        )
        self.notices = NoticeOutbox(db=self.db, sender=self.channels)
        self.replier = NoticeReplier(self.notices)  # the router's and the chat commands' replies
        self.cli = CliAdapter(socket_path=settings.cli_socket)
        if adapters is None:  # built from settings: each channel is switched on by its credentials
            built, skipped = build_adapters(settings)
            adapters = built
            for state in skipped:
                self.channels.note(state)
        for adapter in [self.cli, *adapters]:
            self.channels.add(adapter)
        self.typing = TypingKeeper()
        self.actions = SystemActions()
        self.actions.register("notify_agent", self._notify_agent_action)
        TaskActions(settings=settings, sessions=self.sessions).install(self.actions)
        AgentActions(settings=settings, repo=self.repo, sessions=self.sessions).install(
            self.actions
        )
        ScriptResults(sessions=self.sessions, notices=self.notices).install(self.actions)
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
        self.card_actions = CardActions()
        # Usage per turn into the central DB; a spent daily budget pauses the group's turns.
        self.usage = UsageLedger(settings=settings, repo=self.repo, sessions=self.sessions)
        self.permissions = build_permissions(  # approvals, admin chat commands, action gate
            db=self.db,
            repo=self.repo,
            groups_path=settings.groups_path,
            sessions=self.sessions,
            reader=self.reader,
            channels=self.channels,
            notices=self.notices,
            reply=self.replier.reply,
            actions=self.actions,
            card_actions=self.card_actions,
            ledger=self.usage,
            write_to_agent=self.delivery.write_to_agent,
            origins=self.delivery.origins,
            route=self._reroute,  # an approved sender's message goes through the router again
        )
        self.router = Router(
            repo=self.repo,
            sessions=self.sessions,
            waker=self.supervisor,
            replier=self.replier,
            approvals=self.permissions.approvals,
            commands=self.permissions.commands,
            threaded_channels=self.channels.threaded(),
        )
        self.card_actions.add(
            QuestionAnswers(
                repo=self.repo,
                sessions=self.sessions,
                reader=self.reader,
                write_to_agent=self.delivery.write_to_agent,
                running_sessions=self.supervisor.running_sessions,
            )
        )
        self.pairer = Pairer(
            codes=PairingCodes(path=settings.data_path / PAIRING_FILE),
            repo=self.repo,
            route=self._route_and_type,
        )
        self.supervisor.on_exit(self._on_runner_exit)
        self.supervisor.on_start(self.delivery.notice)  # its outbound.db is watched at once
        self.supervisor.on_exit(self.sandbox.on_runner_exit)
        self.delivery.on_turn_done(self._on_turn_done)
        self.sweep = Sweep(
            settings=settings,
            repo=self.repo,
            sessions=self.sessions,
            reader=self.reader,
            supervisor=self.supervisor,
            delivery=self.delivery,
            notices=self.notices,
        )
        self.supervisor.on_exit(self.sweep.on_runner_exit)
        self.delivery.on_turn_done(self.sweep.on_turn_done)
        self.budget = BudgetGuard(
            repo=self.repo,
            ledger=self.usage,
            notices=self.notices,
            stop_session=self.supervisor.stop,
            running_sessions=self.supervisor.running_sessions,
        )
        self.supervisor.spec_hook = self.budget.wrap_spec_hook(self.supervisor.spec_hook)
        self.delivery.on_turn_done(self.budget.on_turn_done)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = False

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._started:
            raise RuntimeError("host already started")
        self._started = True
        await asyncio.to_thread(self.db.migrate)
        await self.sandbox.start()
        await self.supervisor.start()
        # Before channels accept messages: stale claims, hot journals, missed tasks, due work.
        await self.sweep.recover()
        for adapter in self.channels.all():
            await self._setup_adapter(adapter)
        self._spawn(self.delivery.run(), "delivery")
        self._spawn(self.sweep.run(), "sweep")
        self._spawn(self.notices.run(), "notices")
        self._spawn(self.permissions.approvals.run_expiry(), "approval-expiry")
        await self._recover()
        log.info("host up (install %s, runtime %s)", self.settings.install_id, self.runtime.name)

    async def stop(self) -> None:
        self.sweep.close()
        await self.typing.stop_all()
        await self.channels.teardown_all()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.delivery.close()
        await self.supervisor.close()
        await self.sandbox.stop()
        self.db.dispose()
        log.info("host stopped")

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task: asyncio.Task[Any] = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s died", task.get_name(), exc_info=task.exception())

    async def _setup_adapter(self, adapter: ChannelAdapter) -> None:
        setup = ChannelSetup(on_inbound=self.on_inbound, on_action=self.on_action)
        if adapter is self.cli:
            if not await self.channels.connect(adapter, setup):
                self._spawn(self.channels.keep_connecting(adapter, setup), "connect-cli")
            return
        # Network channels connect in the background: a slow or failing one never stops the host.
        self._spawn(self._connect_channel(adapter, setup), f"connect-{adapter.name}")

    async def _connect_channel(self, adapter: ChannelAdapter, setup: ChannelSetup) -> None:
        if not await self.channels.connect(adapter, setup):
            await self.channels.keep_connecting(adapter, setup)

    async def _recover(self) -> None:
        """After a restart: deliver what runners wrote while we were down.

        Due work was already woken by the sweep's recovery pass (``sweep.recover``).
        """
        for session in await asyncio.to_thread(self.repo.sessions):
            self.delivery.watch(session.id)

    # -- callbacks -------------------------------------------------------------------------------
    async def on_inbound(self, event: InboundEvent) -> RouteReceipt:
        if event.channel_type != self.cli.channel_type and await self.pairer.try_pair(event):
            return RouteReceipt(0, (), consumed=True)
        return await self._route_and_type(event)

    async def _reroute(self, event: InboundEvent) -> RouteOutcome:
        return await self.router.route(event)

    async def _route_and_type(self, event: InboundEvent) -> RouteReceipt:
        outcome = await self.router.route(event)
        adapter = self.channels.get(event.channel_type)
        if adapter is not None:  # "working…" on the chat until the woken turn is delivered
            waiting: dict[str, list[str]] = {}
            for d in outcome.deliveries:
                if d.trigger:
                    waiting.setdefault(d.session_id, []).append(d.message_id)
            for session_id, ids in waiting.items():
                self.typing.start(session_id, adapter, event.platform_id, event.thread_id, ids)
        return outcome.receipt()

    async def on_action(self, question_id: str, value: str, user_id: str) -> str | None:
        """A card button click from any channel: approvals first, then runner questions."""
        return await self.card_actions.dispatch(question_id, value, user_id)

    def _wake_soon(self, session_id: str) -> None:
        self._spawn(self._wake(session_id), f"wake-{session_id}")

    async def _wake(self, session_id: str) -> None:
        await self.supervisor.wake(session_id)

    async def _on_runner_exit(self, session_id: str, result: RunnerExit) -> None:
        self.delivery.watch(session_id)  # one last drain of what it wrote
        await self.typing.stop(session_id)

    async def _on_turn_done(self, session_id: str, message_ids: frozenset[str]) -> None:
        await self.typing.done(session_id, message_ids)
        await self.cli.turn_done(message_ids)

    async def _notify_agent_action(self, session: SessionRow, row: OutboundRow) -> ActionResult:
        return ActionResult("error", str(row.content.get("text") or "notice"))
