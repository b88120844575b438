"""The supervisor: wakes sessions, at most one runner each, under a global cap, with idle stops.

Invariant 4: ``wake`` never raises, joins a start already under way, and leaves the
messages pending when it cannot start (cap reached, runtime down, no credentials).
Over the cap, sessions queue and start in arrival order as slots free, and a slot is made at
once (DESIGN §4): the least recently active runner that is idle is stopped, then or, when every
runner is mid-turn, as soon as a turn ends (:meth:`Supervisor.on_turn_done`). Idle means no row
is claimed (``processing``) and no due triggering row waits; a runner that is starting is never
chosen. A runner blocked in ``ask_user_question`` holds its batch's claim, so it counts as
mid-turn and is never evicted: its turn cannot resume after a restart (the batch would run
again from the start and ask again). A runner whose system action awaits an approval card is
idle (the decision arrives as a new inbound row that wakes it), so it may be evicted.

Liveness has one source: ``liveness`` derives it from this runner table (a start under way, or
a handle whose process has not exited). The sweep, status, delivery and eviction read it; the
``sessions.runner_status`` column is only its copy published for other processes, written here
at each start and exit and reset at start-up (no runner of this install outlives the host).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nanoclaw.admin.bootstrap import ensure_global_instructions
from nanoclaw.cancel import cancel_and_wait
from nanoclaw.contract.confined import ConfinedDir
from nanoclaw.contract.runner_config import RunnerConfig
from nanoclaw.contract.timeutil import now_iso
from nanoclaw.db.repository import Repository
from nanoclaw.errors import NotFoundError, SandboxFileError
from nanoclaw.executors import Executors
from nanoclaw.runtime.base import RunnerExit, RunnerHandle, RunnerRuntime, RunSpec
from nanoclaw.runtime.liveness import RunnerLiveness
from nanoclaw.runtime.model_limits import with_model_limits
from nanoclaw.runtime.packages import packages_site
from nanoclaw.sessions.outbound_reader import SessionReader
from nanoclaw.sessions.service import SessionService
from nanoclaw.settings import Settings
from nanoclaw.tasks import Spawn

if TYPE_CHECKING:
    from nanoclaw.sessions.quarantine import SessionQuarantine

log = logging.getLogger("nanoclaw.supervisor")

IDLE_CHECK_INTERVAL_S = 5.0
ORPHAN_REAP_INTERVAL_S = 60.0  # besides start-up, runners no session owns are removed this often
EXIT_LISTENERS_TIMEOUT_S = 30.0  # a stop waits this long for the exit listeners it triggered

ExitListener = Callable[[str, RunnerExit], Awaitable[None]]
SpecHook = Callable[[RunSpec, RunnerConfig], Awaitable[tuple[RunSpec, RunnerConfig]]]


@dataclass
class _Running:
    handle: RunnerHandle
    last_activity: float
    monitor: asyncio.Task[None] | None = None
    evicting: bool = False  # being stopped to make room; a wake in the meantime queues


class Supervisor:
    def __init__(
        self,
        *,
        executors: Executors,
        settings: Settings,
        runtime: RunnerRuntime,
        repo: Repository,
        sessions: SessionService,
        reader: SessionReader,
        spawn: Spawn,
        clock: Callable[[], float] = time.monotonic,
        spec_hook: SpecHook | None = None,
        quarantine: SessionQuarantine | None = None,
    ) -> None:
        self.executors = executors
        self.settings = settings
        self.runtime = runtime
        self.repo = repo
        self.sessions = sessions
        self.reader = reader
        self.spawn = spawn  # the host's task owner (queued starts)
        self.clock = clock
        self.spec_hook = spec_hook
        self.quarantine = quarantine
        self.cap = settings.max_concurrent_runners
        self._running: dict[str, _Running] = {}
        self._starting: dict[str, asyncio.Task[bool]] = {}
        self._queue: OrderedDict[str, None] = OrderedDict()
        self._exit_listeners: list[ExitListener] = []
        self._start_listeners: list[Callable[[str], None]] = []
        self._wake_hooks: list[Callable[[str], Awaitable[None]]] = []
        self._idle_task: asyncio.Task[None] | None = None
        self._closing = False
        self._evictions: set[asyncio.Future[None]] = set()

    # -- public -------------------------------------------------------------------------------
    def on_exit(self, listener: ExitListener) -> None:
        self._exit_listeners.append(listener)

    def on_start(self, listener: Callable[[str], None]) -> None:
        """Called (synchronously) with the session id once its runner is up."""
        self._start_listeners.append(listener)

    def before_wake(self, hook: Callable[[str], Awaitable[None]]) -> None:
        """Awaited with the session id before each wake (the sweep's start-up recovery gate);
        it must not raise."""
        self._wake_hooks.append(hook)

    def liveness(self, session_id: str) -> RunnerLiveness:
        """The one answer to "is this session's runner alive?"; every other reader asks here."""
        running = self._running.get(session_id)
        if running is not None and running.handle.is_running():
            return RunnerLiveness.RUNNING
        if session_id in self._starting:
            return RunnerLiveness.STARTING
        return RunnerLiveness.STOPPED

    def is_alive(self, session_id: str) -> bool:
        """Whether a runner for the session is running or being started by this host."""
        return self.liveness(session_id).alive

    def running_sessions(self) -> set[str]:
        """The sessions whose runner is ``RUNNING``."""
        return {sid for sid in self._running if self.liveness(sid) is RunnerLiveness.RUNNING}

    def eviction_candidates(self) -> list[str]:
        """Running runners a waiting session may displace, least recently active first (each is
        still checked for idleness before it is stopped)."""
        return [
            sid
            for sid, entry in sorted(self._running.items(), key=lambda item: item[1].last_activity)
            if not entry.evicting and self.liveness(sid) is RunnerLiveness.RUNNING
        ]

    def queued_sessions(self) -> list[str]:
        return list(self._queue)

    def note_activity(self, session_id: str) -> None:
        running = self._running.get(session_id)
        if running is not None:
            running.last_activity = self.clock()

    async def wake(self, session_id: str) -> bool:
        """Make sure a runner is (or is becoming) alive for the session. Never raises."""
        for hook in self._wake_hooks:
            try:
                await hook(session_id)
            except Exception:
                log.exception("before-wake hook for %s failed", session_id)
        if self.quarantine is not None and self.quarantine.is_quarantined(session_id):
            try:  # never started again; what was routed to it ends failed with a notice
                await self.quarantine.fail_pending(session_id)
            except Exception:
                log.exception("quarantined session %s: failing its messages failed", session_id)
            return False
        try:
            return await self._wake(session_id)
        except Exception:
            log.exception("wake of %s failed; its messages stay pending", session_id)
            return False

    async def start(self) -> None:
        await self.reap_orphans()
        # No runner of ours is alive now: the published copy of a crashed host's table goes.
        await self.executors.central.run(self.repo.reset_runner_statuses)
        self._idle_task = asyncio.create_task(self._idle_loop(), name="supervisor-idle")

    async def close(self) -> None:
        self._closing = True
        if self._idle_task is not None:
            await cancel_and_wait(self._idle_task)
        while self._starting:
            with contextlib.suppress(Exception):
                await asyncio.gather(*self._starting.values(), return_exceptions=True)
        await asyncio.gather(
            *(self.stop(sid) for sid in list(self._running)), return_exceptions=True
        )

    async def stop(self, session_id: str) -> None:
        running = self._running.get(session_id)
        if running is None:
            return
        await running.handle.stop(grace_s=self.settings.runner_stop_grace_s)
        if running.monitor is not None:
            # ``wait`` neither raises the monitor's own cancellation nor swallows ours; bounded,
            # so a slow exit listener can delay a stop but never hang it.
            _, pending = await asyncio.wait({running.monitor}, timeout=EXIT_LISTENERS_TIMEOUT_S)
            if pending:
                log.error("exit listeners of %s still running after %.0f s", session_id,
                          EXIT_LISTENERS_TIMEOUT_S)  # fmt: skip

    async def reap_orphans(self) -> int:
        """Remove runners of this install that no live session of ours owns (never another install's)."""
        try:
            found = await self.runtime.list_runners(install_id=self.settings.install_id)
        except Exception:
            log.exception("cannot list runners for orphan reaping")
            return 0
        removed = 0
        owned = {r.handle.runner_id for r in self._running.values()}
        for info in found:
            if info.install_id != self.settings.install_id or info.runner_id in owned:
                continue
            if info.session_id in self._starting:
                continue  # being started right now: not an orphan
            try:
                await self.runtime.remove(info.runner_id)
            except Exception:
                log.exception("cannot remove orphan runner %s", info.runner_id)
                continue
            removed += 1
        if removed:
            log.info("removed %d orphan runner(s)", removed)
        return removed

    # -- waking -------------------------------------------------------------------------------
    async def _wake(self, session_id: str) -> bool:
        running = self._running.get(session_id)
        if running is not None and running.evicting:
            # Its runner is being stopped to make room: start it again when a slot frees.
            self._queue.setdefault(session_id, None)
            return False
        if running is not None and self.liveness(session_id) is RunnerLiveness.RUNNING:
            running.last_activity = self.clock()
            return True
        in_flight = self._starting.get(session_id)
        if in_flight is not None:
            return await asyncio.shield(in_flight)
        if self._closing:
            return False
        if len(self._running) + len(self._starting) >= self.cap:
            if session_id not in self._queue:
                self._queue[session_id] = None
                log.info(
                    "runner cap %d reached; %s waits (position %d)",
                    self.cap,
                    session_id,
                    len(self._queue),
                )
            await self._make_room()
            return False
        self._queue.pop(session_id, None)
        task = asyncio.create_task(self._start(session_id), name=f"start-{session_id}")
        self._starting[session_id] = task
        # The start outlives a cancelled waker (shield); it leaves ``_starting`` only when it
        # is done, so ``close`` always finds and awaits it and no runner is started unowned.
        task.add_done_callback(functools.partial(self._forget_start, session_id))
        return await asyncio.shield(task)

    def _forget_start(self, session_id: str, task: asyncio.Task[bool]) -> None:
        if self._starting.get(session_id) is task:
            del self._starting[session_id]

    async def _start(self, session_id: str) -> bool:
        try:
            await self.runtime.check()
            _, layout = await self.executors.central.run(self.sessions.row_and_layout, session_id)
            spec, config = await self.executors.central.run(self._prepare, session_id)
            if self.spec_hook is not None:
                spec, config = await self.spec_hook(spec, config)
            await self.executors.blocking.run(config.write, layout.runner_config)
            handle = await self.runtime.start(spec)
        except SandboxFileError as exc:
            self._promote_later()
            if self.quarantine is not None:
                await self.quarantine.quarantine(session_id, exc)
            else:
                log.warning("cannot start runner for %s: %s", session_id, exc)
            return False
        except Exception as exc:
            log.warning("cannot start runner for %s: %s", session_id, exc)
            self._promote_later()
            return False
        entry = _Running(handle=handle, last_activity=self.clock())
        self._running[session_id] = entry
        entry.monitor = asyncio.create_task(
            self._monitor(session_id, entry), name=f"mon-{session_id}"
        )
        for listener in self._start_listeners:
            try:
                listener(session_id)
            except Exception:
                log.exception("start listener failed for %s", session_id)
        await self.executors.central.run(
            self.repo.set_runner_status, session_id, RunnerLiveness.RUNNING
        )
        log.info("runner %s started for %s", handle.runner_id, session_id)
        return True

    def _prepare(self, session_id: str) -> tuple[RunSpec, RunnerConfig]:
        """Blocking preparation: migrate, clear orphan claims, project, build spec and config."""
        session = self.repo.session(session_id)
        group = self.repo.agent_group(session.agent_group_id)
        cfg = self.repo.container_config(group.id)
        layout = self.sessions.store.ensure(group.folder, session.id)
        store = self.sessions.store
        store.prepare_outbound(layout)
        # No runner is alive for this session: releasing its claims (and rolling back a hot
        # journal by opening read-write) is the host's one permitted write to outbound.db.
        store.clear_orphan_claims(layout)
        self.sessions.project(session, layout)
        with ConfinedDir.open(layout.root, "outbound") as outbound:  # never through a link
            outbound.unlink(layout.heartbeat.name)
        group_dir = self.settings.groups_path / group.folder
        group_dir.mkdir(parents=True, exist_ok=True)
        global_dir = ensure_global_instructions(self.settings).parent
        inbound_head, outbound_head = store.heads()
        provider = cfg.provider or self.settings.effective_provider
        config = RunnerConfig(
            session_id=session.id,
            agent_group_id=group.id,
            assistant_name=cfg.assistant_name or group.name,
            provider=provider,
            model=cfg.model or self.settings.default_model,
            timezone=self.settings.timezone,
            max_messages_per_prompt=cfg.max_messages_per_prompt
            or self.settings.max_messages_per_prompt,
            inbound_schema=inbound_head,
            outbound_schema=outbound_head,
            watch_interval_s=self.settings.watch_interval_s,
            full_poll_interval_s=self.settings.full_poll_interval_s,
            model_base_url=self.settings.anthropic_base_url,
            web_tools=cfg.web_tools,
            mcp_servers=json.loads(cfg.mcp_servers or "{}"),
        )
        config = with_model_limits(config, cfg)
        spec = RunSpec(
            session_id=session.id,
            agent_group_id=group.id,
            agent_folder=group.folder,
            session_dir=layout.root,
            group_dir=group_dir,
            global_dir=global_dir,
            install_id=self.settings.install_id,
            timezone=self.settings.timezone,
            network=cfg.network,
            image=cfg.image_tag,
            packages_dir=packages_site(self.settings.data_path, group.id),
        )
        return spec, config

    async def _monitor(self, session_id: str, entry: _Running) -> None:
        result = await entry.handle.wait()
        if self._running.get(session_id) is entry:
            del self._running[session_id]
        level = logging.INFO if result.exit_code in (0, -15, 143) else logging.WARNING
        log.log(level, "runner for %s exited with %s", session_id, result.exit_code)
        if result.exit_code not in (0, -15, 143) and result.log_tail:
            log.warning("last runner log lines for %s:\n%s", session_id, result.log_tail)
        with contextlib.suppress(Exception):
            await self.executors.central.run(
                self.repo.set_runner_status,
                session_id,
                RunnerLiveness.STOPPED,
                exit_code=result.exit_code,
                exit_log=result.log_tail[-4000:],
            )
        for listener in self._exit_listeners:
            try:
                await listener(session_id, result)
            except Exception:
                log.exception("exit listener failed for %s", session_id)
        self._promote_later()

    def _promote_later(self) -> None:
        if self._queue and not self._closing:
            self.spawn(self._promote(), "promote-queued")

    async def _promote(self) -> None:
        """Start queued sessions, oldest first, while slots are free."""
        while self._queue and len(self._running) + len(self._starting) < self.cap:
            session_id, _ = self._queue.popitem(last=False)
            await self.wake(session_id)

    # -- eviction -------------------------------------------------------------------------------
    async def on_turn_done(self, session_id: str, message_ids: frozenset[str]) -> None:
        """A turn ended, so its runner may be idle now: a session that found every runner
        mid-turn when it arrived gets its slot here, not at the next sweep."""
        if self._queue:
            await self._make_room()

    async def _make_room(self) -> None:
        """Stop idle runners, least recently active first, until each waiting session has a slot."""
        while True:
            evicting = sum(1 for e in self._running.values() if e.evicting)
            if evicting >= len(self._queue) or self._closing:
                return
            victim = await self._least_recently_active_idle()
            if victim is None:
                return  # every runner is mid-turn: the next turn's end tries again
            session_id, entry = victim
            entry.evicting = True
            log.info(
                "stopping idle runner of %s to make room for %s",
                session_id,
                next(iter(self._queue)),
            )
            # The monitor sees the exit and promotes the queue; the stop runs in the background
            # so the waker (the router) is not held for the runner's grace period.
            task = asyncio.ensure_future(self._evict(session_id))
            self._evictions.add(task)
            task.add_done_callback(self._evictions.discard)

    async def _evict(self, session_id: str) -> None:
        try:
            await self.stop(session_id)
        except Exception:
            log.exception("cannot stop runner of %s to make room", session_id)

    async def _least_recently_active_idle(self) -> tuple[str, _Running] | None:
        for session_id in self.eviction_candidates():
            entry = self._running[session_id]
            # Re-checked after the awaits: a wake may have marked it meanwhile.
            idle = await self._is_idle(session_id)
            if idle and not entry.evicting and self._running.get(session_id) is entry:
                return session_id, entry
        return None

    async def _is_idle(self, session_id: str) -> bool:
        """No claimed row and no due triggering row: the runner is between turns."""
        try:
            _, layout = await self.executors.central.run(self.sessions.row_and_layout, session_id)
            claims = await self.executors.sessions.run(session_id, self.reader.acks, layout)
            if any(status == "processing" for status in claims.values()):
                return False
            return not await self.executors.sessions.run(
                session_id, self.reader.has_due_trigger, layout, now=now_iso()
            )
        except Exception:
            log.exception("cannot tell whether %s is idle; not evicting it", session_id)
            return False

    # -- idle -----------------------------------------------------------------------------------
    async def _idle_loop(self) -> None:
        last_reap = self.clock()
        while True:
            await asyncio.sleep(min(IDLE_CHECK_INTERVAL_S, self.settings.idle_timeout_s / 2))
            await self.stop_idle()
            if self.clock() - last_reap >= ORPHAN_REAP_INTERVAL_S:
                last_reap = self.clock()
                await self.reap_orphans()

    async def stop_idle(self) -> list[str]:
        now = self.clock()
        stopped: list[str] = []
        for session_id, entry in list(self._running.items()):
            try:
                session = await self.executors.central.run(self.repo.session, session_id)
            except NotFoundError:  # its agent was deleted (e.g. setup's check agent): stop it
                log.info("stopping the runner of deleted session %s", session_id)
                await self.stop(session_id)
                stopped.append(session_id)
                continue
            if now - entry.last_activity < self.settings.idle_timeout_s:
                continue
            layout = await self.executors.central.run(self.sessions.layout, session)
            claims = await self.executors.sessions.run(session_id, self.reader.acks, layout)
            if any(status == "processing" for status in claims.values()):
                continue  # mid-turn: stuck detection is the sweep's job, not idleness
            if await self.executors.sessions.run(
                session_id, self.reader.has_due_trigger, layout, now=now_iso()
            ):
                continue
            log.info("stopping idle runner for %s", session_id)
            await self.stop(session_id)
            stopped.append(session_id)
        return stopped
