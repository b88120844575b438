"""The host: ``build_host`` is the composition root; ``Host`` starts and stops every loop and owns
their tasks.

``build_host`` builds every component once, in dependency order, each with its collaborators
passed explicitly; nothing is assigned to a component after it is built and no component
receives the host. Two pairs of components reach each other at run time (approvals ↔ router,
approvals ↔ action gate); each pair is joined by one forward-referencing closure, commented
where it is made. The executors (``nanoclaw.executors``) are built first and closed last: every
blocking call of every component runs on them.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from nanoclaw.admin.extensions import Extensions
from nanoclaw.channels.base import ChannelAdapter, ChannelSetup, InboundEvent, RouteReceipt
from nanoclaw.channels.card_actions import CardActions, QuestionAnswers
from nanoclaw.channels.cli.adapter import CliAdapter
from nanoclaw.channels.cli.backlog import CliBacklog
from nanoclaw.channels.pairing import PAIRING_FILE, PairingCodes
from nanoclaw.channels.registry import STATE_FILE, ChannelRegistry, build_adapters
from nanoclaw.channels.typing import TypingKeeper
from nanoclaw.clock import Clock, SystemClock
from nanoclaw.contract.actions import ActionName, ActionStatus, NotifyAgentPayload
from nanoclaw.contract.layout import SessionLayout
from nanoclaw.db.central import CentralDB
from nanoclaw.db.models import SessionRow
from nanoclaw.db.repository import Repository
from nanoclaw.db.sqlite import EngineCache
from nanoclaw.delivery.actions import ActionResult, SystemActions
from nanoclaw.delivery.agent_actions import AgentActions
from nanoclaw.delivery.extension_actions import ExtensionActions
from nanoclaw.delivery.loop import DeliveryLoop
from nanoclaw.delivery.notices import NoticeOutbox, Notifier
from nanoclaw.delivery.task_actions import TaskActions
from nanoclaw.executors import Executors
from nanoclaw.permissions.setup import Permissions, build_permissions
from nanoclaw.routing.inbound import InboundHandler, TypedRoute
from nanoclaw.routing.outcome import RouteOutcome
from nanoclaw.routing.router import Router
from nanoclaw.routing.unhandled import UnhandledInbound
from nanoclaw.runtime.base import RunnerExit, RunnerRuntime
from nanoclaw.runtime.mounts import MountPolicy
from nanoclaw.runtime.packages import PackageInstaller
from nanoclaw.runtime.sandbox import SandboxServices, build_proxy
from nanoclaw.runtime.select import select_runtime
from nanoclaw.runtime.supervisor import Supervisor
from nanoclaw.scheduling.script_results import ScriptResults
from nanoclaw.sessions.activity import SessionActivity
from nanoclaw.sessions.outbound_reader import OutboundRow, SessionReader
from nanoclaw.sessions.quarantine import SessionQuarantine
from nanoclaw.sessions.service import SessionService
from nanoclaw.sessions.store import SessionStore
from nanoclaw.sessions.write_client import WriteWorker
from nanoclaw.sessions.writes import SessionWrites
from nanoclaw.settings import Settings
from nanoclaw.sweep.loop import Sweep
from nanoclaw.sweep.settled import SETTLED_RECORD_NAME, SettledStore
from nanoclaw.tasks import TaskOwner
from nanoclaw.usage.budget import BudgetGuard, BudgetPause
from nanoclaw.usage.ledger import UsageLedger

# How long stop waits for its cancelled loops before it stops the runners anyway.
TASK_STOP_TIMEOUT_S = 10.0

log = logging.getLogger("nanoclaw.host")


class NoticeReplier:
    """Sends host replies (denials, command answers) to the event's chat through the outbox."""

    def __init__(self, notices: Notifier) -> None:
        self.notices = notices

    async def reply(self, event: InboundEvent, text: str) -> None:
        await self.notices.notify(event.channel_type, event.platform_id, event.thread_id, text)


async def _notify_agent_action(
    session: SessionRow, row: OutboundRow, payload: NotifyAgentPayload
) -> ActionResult:
    return ActionResult(ActionStatus.ERROR, payload.text)


@dataclass(frozen=True, kw_only=True, eq=False)
class Host:
    """Every component of a running host; :meth:`start` and :meth:`stop` drive their loops."""

    settings: Settings
    clock: Clock
    tasks: TaskOwner  # the one owner of every background task
    executors: Executors  # where blocking work runs: central DB, session DBs, other I/O
    db: CentralDB
    repo: Repository
    engines: EngineCache
    store: SessionStore
    writes: SessionWrites  # the per-message inbound.db writes (the write worker, else lanes)
    reader: SessionReader
    sessions: SessionService
    runtime: RunnerRuntime
    sandbox: SandboxServices  # credential proxy, per-runner tokens, extra mounts
    supervisor: Supervisor
    channels: ChannelRegistry
    notices: NoticeOutbox
    replier: NoticeReplier  # the router's and the chat commands' replies
    cli: CliAdapter
    typing: TypingKeeper
    actions: SystemActions
    delivery: DeliveryLoop
    card_actions: CardActions
    usage: UsageLedger
    budget: BudgetGuard
    permissions: Permissions  # approvals, admin chat commands, action gate
    activity: SessionActivity  # sessions' last_active, written in batches
    router: Router
    inbound: InboundHandler
    sweep: Sweep
    quarantine: SessionQuarantine  # sessions whose sandbox left an unsafe file (invariant 6)

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        self.tasks.open()  # a second start raises
        await self.executors.central.run(self.db.migrate)
        await self.executors.central.run(self.quarantine.load)
        await self.sandbox.start()
        await self.writes.start()
        await self.supervisor.start()
        # Before channels accept messages: hot journals; the recovery visits (stale claims,
        # missed tasks, due work) follow in the sweep's task, and a wake visits first.
        await self.sweep.recover()
        setup = ChannelSetup(
            on_inbound=self.on_inbound, on_action=self.on_action, on_migrate=self.on_migrate
        )
        for adapter in self.channels.all():
            await self._setup_adapter(adapter, setup)
        self.tasks.spawn(self.delivery.run(), "delivery")
        self.tasks.spawn(self.sweep.run(), "sweep")
        self.tasks.spawn(self.notices.run(), "notices")
        self.tasks.spawn(self.permissions.approvals.run_expiry(), "approval-expiry")
        # After a restart: deliver what runners wrote while we were down (due work was woken
        # by the sweep's recovery pass). A session whose every reply has its delivery record
        # is not drained (two counts instead of a pass that reads its whole history), and one
        # the sweep's settled record shows so, unchanged since, is not even opened.
        for session in await self._undelivered_sessions():
            self.delivery.watch(session.id)
        log.info("host up (install %s, runtime %s)", self.settings.install_id, self.runtime.name)

    async def _undelivered_sessions(self) -> list[SessionRow]:
        sessions = await self.executors.central.run(self._sessions_with_layouts)
        found = []
        for session, layout in sessions:
            if self.quarantine.is_quarantined(session.id):
                continue  # its files are never opened again (delivery skips it anyway)
            if self.sweep.settled_and_delivered(session.id):
                continue
            try:
                run = self.executors.sessions.run
                if await run(session.id, self.reader.all_delivered, layout):
                    continue
            except Exception as exc:  # unreadable here: the drain will say what is wrong
                log.debug("cannot count the deliveries of %s: %s", session.id, exc)
            found.append(session)
        return found

    def _sessions_with_layouts(self) -> list[tuple[SessionRow, SessionLayout]]:
        return [(s, self.sessions.layout(s)) for s in self.repo.sessions()]

    async def stop(self) -> None:
        self.sweep.close()
        await self.typing.stop_all()
        await self.channels.teardown_all()
        # Bounded, and never swallowing our own cancellation: whatever a task does, the
        # runners below are always told to stop (issue #10's teardown hang).
        await self.tasks.close(timeout_s=TASK_STOP_TIMEOUT_S)
        await self.activity.flush()
        await self.delivery.close()
        await self.writes.close()  # after the last delivery record
        await self.supervisor.close()
        await self.sandbox.stop()
        await self.executors.central.run(self.db.dispose)
        await self.executors.close()
        log.info("host stopped")

    async def _setup_adapter(self, adapter: ChannelAdapter, setup: ChannelSetup) -> None:
        if adapter is self.cli:
            if not await self.channels.connect(adapter, setup):
                self.tasks.spawn(self.channels.keep_connecting(adapter, setup), "connect-cli")
            return
        # Network channels connect in the background: a slow or failing one never stops the host.
        self.tasks.spawn(self._connect_channel(adapter, setup), f"connect-{adapter.name}")

    async def _connect_channel(self, adapter: ChannelAdapter, setup: ChannelSetup) -> None:
        if not await self.channels.connect(adapter, setup):
            await self.channels.keep_connecting(adapter, setup)
        await self.channels.watch_health(adapter)  # honest state in status and doctor

    # -- callbacks -------------------------------------------------------------------------------
    async def on_inbound(self, event: InboundEvent) -> RouteReceipt:
        """An event from any channel (what every adapter's ``on_inbound`` calls)."""
        return await self.inbound.on_inbound(event)

    async def on_migrate(self, channel_type: str, old_id: str, new_id: str) -> None:
        """A chat moved to a new platform id: its messaging group and agents follow it."""
        central = self.executors.central
        agents = await central.run(self.repo.move_messaging_group, channel_type, old_id, new_id)
        for agent_group_id in agents:
            # Reads the central DB and writes each live session's inbound.db inline (a central
            # job that does its own session-file writes, never a nested submission).
            await central.run(self.sessions.project_agent, agent_group_id)

    async def on_action(self, question_id: str, value: str, user_id: str) -> str | None:
        """A card button click from any channel: approvals first, then runner questions."""
        return await self.card_actions.dispatch(question_id, value, user_id)


def build_host(
    settings: Settings,
    *,
    clock: Clock | None = None,
    runtime: RunnerRuntime | None = None,
    channels: Sequence[ChannelAdapter] | None = None,
    write_worker: WriteWorker | None = None,
) -> Host:
    """Build every component of a host, in order. ``channels=None`` builds them from settings
    (each network channel is switched on by its credentials); the local CLI is always there.
    ``write_worker``: the session-DB write worker ``nanoclaw run`` starts (None: in-process)."""
    clock = clock or SystemClock()
    tasks = TaskOwner()
    executors = Executors.build()
    db = CentralDB(path=settings.central_db_path, migrations_root=settings.migrations_path)
    repo = Repository(db)
    engines = EngineCache()
    store = SessionStore(
        sessions_root=settings.sessions_path,
        engines=engines,
    )
    reader = SessionReader(engines=engines)
    sessions = SessionService(repo=repo, store=store)
    writes = SessionWrites(executors=executors, store=store, worker=write_worker)
    runtime = runtime or select_runtime(settings, blocking=executors.blocking).runtime

    registry = ChannelRegistry(
        state_path=settings.data_path / STATE_FILE,
        retry_delays_s=settings.channel_retry_delays_s,
    )
    cli = CliAdapter(
        executors=executors,
        socket_path=settings.cli_socket,
        backlog=CliBacklog(db=db, per_chat_max=settings.cli_backlog_per_chat),
        client_buffer_bytes=settings.cli_client_buffer_bytes,
    )
    if channels is None:
        built, skipped = build_adapters(settings, blocking=executors.blocking)
        channels = built
        for state in skipped:
            registry.note(state)
    for adapter in [cli, *channels]:
        registry.add(adapter)
    notices = NoticeOutbox(executors=executors, db=db, sender=registry, clock=clock.now)
    replier = NoticeReplier(notices)

    # Usage per turn into the central DB; a spent daily budget refuses the group's starts.
    usage = UsageLedger(settings=settings, repo=repo, sessions=sessions)
    budget = BudgetGuard(
        executors=executors, repo=repo, ledger=usage, notices=notices, spawn=tasks.spawn
    )
    sandbox = SandboxServices(
        executors=executors,
        settings=settings,
        repo=repo,
        default_runtime=runtime.name,
        proxy=build_proxy(settings),
    )
    supervisor = Supervisor(
        executors=executors,
        settings=settings,
        runtime=runtime,
        repo=repo,
        sessions=sessions,
        reader=reader,
        spawn=tasks.spawn,
        clock=clock.monotonic,
        spec_hook=budget.wrap_spec_hook(sandbox.spec_hook),
    )
    quarantine = SessionQuarantine(
        executors=executors,
        db=db,
        repo=repo,
        sessions=sessions,
        notices=notices,
        stop_runner=supervisor.stop,
    )
    supervisor.quarantine = quarantine

    typing = TypingKeeper()
    actions = SystemActions()
    actions.register_payload(ActionName.NOTIFY_AGENT, NotifyAgentPayload, _notify_agent_action)
    TaskActions(executors=executors, settings=settings, sessions=sessions).install(actions)
    AgentActions(executors=executors, settings=settings, repo=repo, sessions=sessions).install(
        actions
    )
    ExtensionActions(
        executors=executors,
        extensions=Extensions(repo=repo, groups_path=settings.groups_path),
        installer=PackageInstaller(
            runtime=runtime, data_path=settings.data_path, progress=log.info
        ),
    ).install(actions)
    ScriptResults(executors=executors, sessions=sessions, notices=notices).install(actions)
    delivery = DeliveryLoop(
        executors=executors,
        settings=settings,
        repo=repo,
        sessions=sessions,
        reader=reader,
        channels=registry,
        actions=actions,
        wake=lambda session_id: tasks.spawn(supervisor.wake(session_id), f"wake-{session_id}"),
        running_sessions=supervisor.running_sessions,
        note_activity=supervisor.note_activity,
        quarantine=quarantine,
        notices=notices,
        writes=writes,
    )
    quarantine.report_failed = functools.partial(delivery.report_done, failed=True)

    # Approvals re-route an approved sender's message through the router, which consults the
    # approvals: this closure is that forward reference (``router`` is bound just below,
    # before the host starts and so before any approval can be answered).
    async def reroute(event: InboundEvent) -> RouteOutcome:
        return await router.route(event)

    card_actions = CardActions()
    permissions = build_permissions(  # approvals take card clicks first
        executors=executors,
        db=db,
        repo=repo,
        groups_path=settings.groups_path,
        sessions=sessions,
        reader=reader,
        channels=registry,
        notices=notices,
        reply=replier.reply,
        actions=actions,
        card_actions=card_actions,
        ledger=usage,
        write_to_agent=delivery.write_to_agent,
        origins=delivery.origins,
        route=reroute,
        liveness=supervisor.liveness,  # status reads the supervisor's runner table
        mount_policy=MountPolicy.for_install(
            allowlist_path=settings.mount_allowlist_path,
            root=settings.root,
            data=settings.data_path,
            groups=settings.groups_path,
        ),
    )
    activity = SessionActivity(executors=executors, repo=repo, spawn=tasks.spawn)
    router = Router(
        executors=executors,
        repo=repo,
        sessions=sessions,
        activity=activity,
        waker=supervisor,
        replier=replier,
        approvals=permissions.approvals,
        commands=permissions.commands,
        threaded_channels=registry.threaded(),
        unhandled=UnhandledInbound(
            executors=executors,
            db=db,
            notices=notices,
            told_by_receipt=frozenset({cli.channel_type}),
        ),
        writes=writes,
    )
    card_actions.add(
        QuestionAnswers(
            executors=executors,
            repo=repo,
            sessions=sessions,
            reader=reader,
            write_to_agent=delivery.write_to_agent,
            running_sessions=supervisor.running_sessions,
        )
    )
    inbound = InboundHandler(
        executors=executors,
        route=TypedRoute(router=router, channels=registry, typing=typing),
        codes=PairingCodes(path=settings.data_path / PAIRING_FILE),
        repo=repo,
        local_channel_type=cli.channel_type,
    )
    sweep = Sweep(
        executors=executors,
        settings=settings,
        repo=repo,
        sessions=sessions,
        reader=reader,
        supervisor=supervisor,
        delivery=delivery,
        notices=notices,
        spawn=tasks.spawn,
        clock=clock.now,
        quarantine=quarantine,
        settled_store=SettledStore(path=settings.data_path / SETTLED_RECORD_NAME),
    )

    async def runner_exited(session_id: str, result: RunnerExit) -> None:
        delivery.watch(session_id)  # one last drain of what it wrote
        await typing.stop(session_id)

    async def turn_done(session_id: str, message_ids: frozenset[str]) -> None:
        await typing.done(session_id, message_ids)
        await cli.turn_done(message_ids, failed=delivery.failed_among(session_id, message_ids))

    supervisor.on_exit(runner_exited)
    supervisor.on_start(delivery.notice)  # its outbound.db is watched at once
    supervisor.on_exit(sandbox.on_runner_exit)
    supervisor.on_exit(sweep.on_runner_exit)
    supervisor.before_wake(sweep.ensure_recovered)  # start-up recovery runs before any start
    pause = BudgetPause(
        executors=executors,
        guard=budget,
        repo=repo,
        stop_session=supervisor.stop,
        running_sessions=supervisor.running_sessions,
    )
    delivery.on_turn_done(turn_done)
    delivery.on_turn_done(sweep.on_turn_done)
    delivery.on_turn_done(pause.on_turn_done)
    delivery.on_turn_done(supervisor.on_turn_done)  # a waiting session may take its slot
    delivery.on_turn_end_read(usage.read_at_turn_end)  # the pause's ingest then opens nothing
    return Host(
        settings=settings,
        clock=clock,
        tasks=tasks,
        executors=executors,
        db=db,
        repo=repo,
        engines=engines,
        store=store,
        writes=writes,
        reader=reader,
        sessions=sessions,
        runtime=runtime,
        sandbox=sandbox,
        supervisor=supervisor,
        channels=registry,
        notices=notices,
        replier=replier,
        cli=cli,
        typing=typing,
        actions=actions,
        delivery=delivery,
        card_actions=card_actions,
        usage=usage,
        budget=budget,
        permissions=permissions,
        activity=activity,
        router=router,
        inbound=inbound,
        sweep=sweep,
        quarantine=quarantine,
    )
