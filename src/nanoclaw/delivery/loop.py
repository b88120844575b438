"""The delivery loop: ``messages_out`` → ACL → action or adapter → ``delivered``.

Wake on change: ``contract.watcher`` wakes the loop when a watched ``outbound.db`` changes
(inotify, else adaptive polling); every ``full_poll_interval_s`` the change counters are
compared as the safety net, and every ``SAFETY_DRAIN_INTERVAL_S`` all watched sessions are
drained. Watched: sessions with a live runner, and those draining after an exit or waiting
for retries. A session whose rows wait (a retry, a later ``deliver_after``) is drained again
at the first one's time, not at every check. A per-session lock means overlapping passes
never send a row twice; a row is recorded in ``delivered`` right after the adapter accepts
it, so a host crash between the two re-sends it at most once. Attempts are persisted; after the last one the row
ends ``failed`` and the agent is told.

Outbox files are read through ``contract.confined`` (invariant 6): the agent can swap any name
in its outbox at any moment, so a file is opened beneath the session folder's descriptor with no
link followed, checked with ``fstat`` and read through that descriptor. A refused file fails the
row for good and the agent is told why.

Tenant isolation (DESIGN §4): each session drains in its own task, so a slow platform, a
locked or damaged session DB or a flooding agent delays only its own session. Inside a
session, rows go serially per destination chat (in seq order) and concurrently across chats.
Every platform send has a timeout (``delivery_send_timeout_s``); a timed-out send is
retried like any retryable failure (at-least-once). A session's sends pass a token bucket
(``delivery_rate_per_session_per_s``, burst ``delivery_burst_per_session``), so one agent's
flood cannot monopolise the host. A channel's own outbound scheduler (platform rate limits)
sits behind ``adapter.deliver``; a ``DeliveryError`` carrying ``retry_after_s`` is retried no
sooner than that, and a ``DeliveryDeferredError`` (the scheduler's wait for a flood-limited
chat) is re-scheduled after its wait without counting an attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from nanoclaw.channels.base import OutboundFile, OutboundPayload
from nanoclaw.channels.registry import ChannelRegistry
from nanoclaw.contract import sessiondb
from nanoclaw.contract.confined import ConfinedDir
from nanoclaw.contract.dbwatch import change_signature
from nanoclaw.contract.layout import SessionLayout
from nanoclaw.contract.timeutil import now_iso, parse_iso, to_iso, utc_now
from nanoclaw.contract.watcher import ChangeWatcher
from nanoclaw.db.models import SessionRow
from nanoclaw.db.repository import Repository
from nanoclaw.delivery.acks import FINISHED, AckTracker
from nanoclaw.delivery.actions import SystemActions, action_result_content
from nanoclaw.delivery.agent_route import AgentLimitError, AgentRouter
from nanoclaw.delivery.notices import Notifier
from nanoclaw.delivery.origin import OriginLedger
from nanoclaw.delivery.rate import TokenBucket
from nanoclaw.errors import (
    DeliveryDeferredError,
    DeliveryError,
    NanoclawError,
    SandboxFileError,
    UnauthorizedDestinationError,
)
from nanoclaw.executors import Executors
from nanoclaw.ids import new_id
from nanoclaw.sessions.outbound_reader import DeliveryState, OutboundRow, SessionReader
from nanoclaw.sessions.paths import safe_name
from nanoclaw.sessions.service import SessionService
from nanoclaw.sessions.store import InboundMessage
from nanoclaw.sessions.writes import SessionWrites
from nanoclaw.settings import Settings

if TYPE_CHECKING:
    from nanoclaw.sessions.quarantine import SessionQuarantine

log = logging.getLogger("nanoclaw.delivery")

NOTICE_PREFIX = "notice-"
MAX_OUTBOX_FILE_BYTES = 50 * 1024 * 1024  # Telegram's bot upload limit; Slack's is higher
SAFETY_DRAIN_INTERVAL_S = 30.0  # every watched session is drained this often regardless
FAULT_LOG_INTERVAL_S = 300.0  # a session that keeps failing is logged with a traceback this often
# Rows left waiting (retries, later deliveries) that a pass re-reads by seq; with more, it
# reads every row above the floor instead (one IN list, well under SQLite's parameter limit).
OPEN_ROWS_READ_BY_SEQ = 500

TurnDoneListener = Callable[[str, frozenset[str]], Awaitable[None]]
# Called on the session's lane, inside a pass that saw a turn end, with the pass's read-only
# outbound.db connection (its later reads of the file need no open of their own).
TurnEndReader = Callable[[str, sqlite3.Connection], None]


@dataclass(frozen=True)
class _Cursor:
    """How far a session's passes have read ``messages_out``: every row up to ``read_to`` is
    terminal except those in ``open`` (ascending seqs, left waiting), so a pass reads only
    those and the rows above ``read_to``; rows behind a long-waiting row are not read again."""

    read_to: int = 0
    open: tuple[int, ...] = ()

    @property
    def floor(self) -> int:
        """Every row at or below is terminal."""
        return self.open[0] - 1 if self.open else self.read_to

    def to_read(self) -> tuple[int, tuple[int, ...]]:
        """The next pass's read, as (rows above this seq, and these seqs): the open rows by
        seq, or past :data:`OPEN_ROWS_READ_BY_SEQ` of them every row above the floor."""
        if len(self.open) <= OPEN_ROWS_READ_BY_SEQ:
            return self.read_to, self.open
        return self.floor, ()


@dataclass(frozen=True)
class _Sorted:
    """A pass's rows sorted at its clock."""

    settled: dict[str, bool]  # rows already terminal (True) or waiting (False)
    due: list[OutboundRow]  # the rest, to try now
    later: frozenset[str]  # waiting only for their ``deliver_after``: no turn waits on them
    waits_until: str | None  # when the first waiting row comes due


@dataclass(frozen=True)
class _PassRead:
    """What one delivery pass read (the acks it leaves to fold are held in ``DeliveryLoop.acks``)."""

    rows: list[OutboundRow]
    states: dict[str, DeliveryState]
    sorted: _Sorted


def _to_try(rows: list[OutboundRow], states: dict[str, DeliveryState], now: str) -> _Sorted:
    """Rows already terminal, or waiting for their retry time or their ``deliver_after``; the
    rest to try; and the earliest time a waiting row comes due."""
    settled: dict[str, bool] = {}
    due: list[OutboundRow] = []
    later: set[str] = set()
    waits: list[str] = []
    for row in rows:
        state = states.get(row.id)
        if state is not None and state.status in ("delivered", "failed"):
            settled[row.id] = True
        elif state is not None and state.next_attempt_at and state.next_attempt_at > now:
            settled[row.id] = False
            waits.append(state.next_attempt_at)
        elif row.deliver_after is not None and row.deliver_after > now:
            settled[row.id] = False  # the floor stays below it until it is sent
            later.add(row.id)
            waits.append(row.deliver_after)
        else:
            due.append(row)
    return _Sorted(settled, due, frozenset(later), min(waits, default=None))


class DeliveryLoop:
    def __init__(
        self,
        *,
        executors: Executors,
        settings: Settings,
        repo: Repository,
        sessions: SessionService,
        reader: SessionReader,
        channels: ChannelRegistry,
        actions: SystemActions,
        wake: Callable[[str], object],
        running_sessions: Callable[[], set[str]],
        note_activity: Callable[[str], None] = lambda _sid: None,
        origins: OriginLedger | None = None,
        clock: Callable[[], float] = time.monotonic,
        quarantine: SessionQuarantine | None = None,
        notices: Notifier | None = None,
        writes: SessionWrites | None = None,
    ) -> None:
        self.executors = executors
        self.settings = settings
        # The delivery records and the host's notices to agents (the write worker, else a lane).
        self.writes = writes or SessionWrites(executors=executors, store=sessions.store)
        self.repo = repo
        self.sessions = sessions
        self.reader = reader
        self.channels = channels
        self.actions = actions
        self.wake = wake
        self.running_sessions = running_sessions
        self.note_activity = note_activity
        # Who asked for each system row, decided from host facts when the row is first read.
        self.origins = origins or OriginLedger(engines=reader.engines)
        self.quarantine = quarantine  # a session whose files fail the probe is shut off alone
        # Agent-to-agent rows: return path, files, hop and per-pair limits (agent_route.py).
        self.agents = AgentRouter(
            executors=self.executors,
            settings=settings,
            repo=repo,
            sessions=sessions,
            notices=notices,
            wake=wake,
            read_files=read_outbox_files,
        )
        self._locks: dict[str, asyncio.Lock] = {}
        self._cursors: dict[str, _Cursor] = {}  # how far passes have read messages_out
        self._signatures: dict[str, tuple[int, int] | None] = {}
        self._extra: set[str] = set()  # sessions to keep draining (exited runner, retries)
        self._layouts: dict[str, tuple[SessionRow, SessionLayout]] = {}  # watched sessions
        # Per session: the ack watermark, acks held for the next record to fold, failed
        # verdicts and owed turn-done reports.
        self.acks = AckTracker()
        self._turn_done_listeners: list[TurnDoneListener] = []
        self._turn_end_readers: list[TurnEndReader] = []
        self._agent_names: dict[str, str] = {}  # agent group id → the name its replies carry
        self.clock = clock
        self._draining: dict[str, asyncio.Task[None]] = {}  # one drain task per session
        self._again: set[str] = set()  # changed while its drain ran: drain once more
        self._buckets: dict[str, TokenBucket] = {}
        self._fault_logged_at: dict[str, float] = {}
        # Rows a platform accepted whose ``delivered`` record could not be written yet (a locked
        # or full session DB): the record is retried, the send is not repeated.
        self._sent_unrecorded: dict[str, str | None] = {}
        # Sessions whose last drain left rows waiting (retries, later deliveries): when to drain
        # again (``clock`` time), the first waiting row's time rather than every full poll.
        self._look_again_at: dict[str, float] = {}
        self._membership = asyncio.Event()  # the watched set changed
        self._watcher = ChangeWatcher(fast_interval_s=settings.watch_interval_s)

    def on_turn_done(self, listener: TurnDoneListener) -> None:
        """Called with inbound ids whose turn is acked and whose replies are all delivered."""
        self._turn_done_listeners.append(listener)

    def on_turn_end_read(self, reader: TurnEndReader) -> None:
        """Called (blocking, on the session's lane) in a delivery pass that read a finished
        ack, with the pass's open ``outbound.db`` connection: what the runner wrote with that
        ack (it commits replies, usage and final acks together) can be read on it."""
        self._turn_end_readers.append(reader)

    # -- loop -------------------------------------------------------------------------------------
    def watch(self, session_id: str) -> None:
        """Keep draining a session even with no runner (a final drain, pending retries)."""
        self._extra.add(session_id)
        self._membership.set()

    async def run(self) -> None:
        """Drain sessions whose ``outbound.db`` changed; every full-poll interval, a check.

        The watcher (inotify, else adaptive polling) wakes the loop on a change; every
        ``full_poll_interval_s`` each watched session's change counter is compared (a drain only
        when it moved or a waiting row's time came); every ``SAFETY_DRAIN_INTERVAL_S`` all are
        drained.
        """
        loop = asyncio.get_running_loop()
        next_full = loop.time()
        next_safety = loop.time() + SAFETY_DRAIN_INTERVAL_S
        try:
            while True:
                watched = self.running_sessions() | self._extra
                if self.quarantine is not None:
                    shut = {s for s in watched if self.quarantine.is_quarantined(s)}
                    self._extra -= shut
                    watched -= shut
                await self._sync_watches(watched)
                now = loop.time()
                if now >= next_full:
                    next_full = now + self.settings.full_poll_interval_s
                    safety = now >= next_safety
                    if safety:
                        next_safety = now + SAFETY_DRAIN_INTERVAL_S
                    for session_id in watched & self._watcher.keys():
                        layout = self._layouts[session_id][1]
                        signature = change_signature(layout.outbound_db)
                        moved = signature != self._signatures.get(session_id)
                        again = self._look_again_at.get(session_id, math.inf) <= self.clock()
                        if safety or moved or again:
                            self._signatures[session_id] = signature
                            self.kick(session_id)
                changed = await self._wait(max(0.0, next_full - loop.time()))
                for session_id in changed:
                    self.kick(session_id)
        finally:
            self._watcher.close()

    async def _sync_watches(self, watched: set[str]) -> None:
        for session_id in self._watcher.keys() - watched:
            self._watcher.unwatch(session_id)
            # Its row (with the last exit log) would go stale; a later drain reads it again.
            self._layouts.pop(session_id, None)
            self._look_again_at.pop(session_id, None)
        for session_id in watched - self._watcher.keys():
            try:
                cached = await self._session(session_id)
            except NanoclawError:
                self._extra.discard(session_id)
                continue
            self._watcher.watch(session_id, cached[1].outbound_db)
            self._layouts[session_id] = cached  # every watched session has its layout here
            self.kick(session_id)  # newly watched: whatever it already holds is drained

    async def _wait(self, timeout_s: float) -> set[str]:
        """Until a watched DB changes, the watched set changes, or ``timeout_s``."""
        self._membership.clear()
        change = asyncio.ensure_future(self._watcher.wait(timeout_s))
        membership = asyncio.ensure_future(self._membership.wait())
        try:
            await asyncio.wait({change, membership}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            membership.cancel()
            if not change.done():
                change.cancel()
            await asyncio.gather(change, membership, return_exceptions=True)
        if change.cancelled() or change.exception() is not None:
            return set()
        return change.result()

    def notice(self, session_id: str) -> None:
        """A runner started (or the session needs draining): watch its outbound.db now."""
        self._membership.set()

    def kick(self, session_id: str) -> None:
        """Drain a session in its own task; never waits for it (isolation across sessions)."""
        if session_id in self._draining:
            self._again.add(session_id)  # the running drain goes round once more
            return
        task = asyncio.create_task(self._drain_task(session_id), name=f"drain-{session_id}")
        self._draining[session_id] = task

    async def _drain_task(self, session_id: str) -> None:
        try:
            while True:
                self._again.discard(session_id)
                await self.drain(session_id)
                if session_id not in self._again:
                    return
        finally:
            self._draining.pop(session_id, None)

    def forget(self, session_id: str) -> bool:
        """The session is gone from the central DB (deleted, or by a cascade): what this loop,
        its acks and its origin ledger keep for it goes. False, and nothing forgotten, while
        it is still draining (a kicked drain, or a direct ``drain`` holding its lock) or watched."""
        lock = self._locks.get(session_id)
        busy = session_id in self._draining or (lock is not None and lock.locked())
        if busy or session_id in self._watcher:
            return False
        self._locks.pop(session_id, None)
        self._cursors.pop(session_id, None)
        self._signatures.pop(session_id, None)
        self._layouts.pop(session_id, None)
        self._buckets.pop(session_id, None)
        self._fault_logged_at.pop(session_id, None)
        self._look_again_at.pop(session_id, None)
        self._extra.discard(session_id)
        self._again.discard(session_id)
        self.acks.forget(session_id)
        self.origins.forget(session_id)
        return True

    def known(self) -> set[str]:
        """The sessions this loop, its acks or its origin ledger keep anything for."""
        return (
            self._locks.keys()
            | self._cursors.keys()
            | self._signatures.keys()
            | self._layouts.keys()
            | self._buckets.keys()
            | self._fault_logged_at.keys()
            | self._look_again_at.keys()
            | self._extra
            | self.acks.sessions()
            | self.origins.sessions()
        )

    def layout(self, session_id: str) -> SessionLayout | None:
        """The session's folder layout, when this loop has it cached."""
        cached = self._layouts.get(session_id)
        return None if cached is None else cached[1]

    async def close(self) -> None:
        """Cancel drains under way (a cancelled send is retried after a restart)."""
        tasks = list(self._draining.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _session(self, session_id: str) -> tuple[SessionRow, SessionLayout]:
        cached = self._layouts.get(session_id)
        if cached is None:
            cached = await self.executors.central.run(self.sessions.row_and_layout, session_id)
            if session_id in self._watcher:  # kept while watched (start-up drains: not)
                self._layouts[session_id] = cached
        return cached

    async def drain(self, session_id: str) -> int:
        """Deliver every due, undelivered row of one session; returns how many were handled."""
        lock = self._locks.setdefault(session_id, asyncio.Lock())
        async with lock:
            try:
                handled = await self._drain(session_id)
            except SandboxFileError as exc:
                # Its outbound.db (or journal) is not a plain file: that session alone stops.
                self._extra.discard(session_id)
                if self.quarantine is None:
                    raise
                await self.quarantine.quarantine(session_id, exc)
                return 0
            except Exception as exc:
                # One damaged session never stalls the others; it is reported and retried,
                # with a traceback once per interval, not on every pass.
                now = self.clock()
                last = self._fault_logged_at.get(session_id)
                if last is None or now - last >= FAULT_LOG_INTERVAL_S:
                    self._fault_logged_at[session_id] = now
                    log.exception("drain of %s failed (retried every pass)", session_id)
                else:
                    log.debug("drain of %s failed again: %s", session_id, exc)
                return 0
            if self._fault_logged_at.pop(session_id, None) is not None:
                log.info("drain of %s works again", session_id)
            return handled

    async def _drain(self, session_id: str) -> int:
        session, layout = await self._session(session_id)
        read = await self.executors.sessions.run(
            session_id,
            self._read_pass,
            session_id,
            layout,
            cursor=self._cursors.get(session_id, _Cursor()),
        )
        rows, states = read.rows, read.states
        if not rows:
            if session_id not in self.running_sessions():
                self._extra.discard(session_id)
            await self.report_done(session_id, set(self.acks.owed(session_id)))
            return 0
        terminal, due = dict(read.sorted.settled), read.sorted.due
        lanes: dict[tuple[str | None, ...], list[OutboundRow]] = {}
        for row in due:
            lanes.setdefault(_lane(row), []).append(row)

        async def run_lane(lane: list[OutboundRow]) -> None:
            for index, row in enumerate(lane):  # serial within one chat: rows in seq order
                if row.kind != "system":
                    await self._bucket(session_id).acquire()
                terminal[row.id] = await self._deliver_one(
                    session, layout, row, states.get(row.id), last=index == len(lane) - 1
                )

        # Every lane ends before the session lock is released (no row in flight twice).
        results = await asyncio.gather(
            *(run_lane(lane) for lane in lanes.values()), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        handled = sum(len(lane) for lane in lanes.values())
        # The pass read every open row and every row above the cursor: the rows it left
        # waiting are the new open ones; the terminal requests are never read again.
        before = self._cursors.get(session_id, _Cursor())
        waiting = tuple(row.seq for row in rows if not terminal[row.id])
        self._cursors[session_id] = _Cursor(read_to=max(before.read_to, rows[-1].seq), open=waiting)
        all_terminal = not waiting
        self.origins.settle(
            session_id, [row.id for row in rows if row.kind == "system" and terminal[row.id]]
        )
        if all_terminal:
            self._look_again_at.pop(session_id, None)
        else:
            tried = any(not terminal[row.id] for row in due)
            self._look_again_at[session_id] = self._next_look(read.sorted.waits_until, tried=tried)
        if all_terminal and session_id not in self.running_sessions():
            self._extra.discard(session_id)
        elif not all_terminal:
            self._extra.add(session_id)
        if handled:
            self.note_activity(session_id)
        # A row to deliver later holds the floor, not the turns: theirs are done when the rest is.
        if all(terminal[row.id] or row.id in read.sorted.later for row in rows):
            await self.report_done(session_id, set(self.acks.owed(session_id)))
        return handled

    def _next_look(self, waits_until: str | None, *, tried: bool) -> float:
        """When to drain a session again whose rows wait: at the first waiting row's time (at
        most the safety interval away); at the next full poll when a row failed in this pass
        (its retry time is read then) or no time is known."""
        soon = self.clock() + self.settings.full_poll_interval_s
        if waits_until is None:
            return soon
        seconds = (parse_iso(waits_until) - utc_now()).total_seconds()
        at = self.clock() + min(max(seconds, 0.0), SAFETY_DRAIN_INTERVAL_S)
        return min(at, soon) if tried else at

    def _read_pass(self, session_id: str, layout: SessionLayout, *, cursor: _Cursor) -> _PassRead:
        """Blocking, on the session's lane (one job, so one hop): read the acks changed since
        the watermark, observe, read the rows ``cursor`` leaves unread or open, decide new
        requests' origins, read their delivery states, and sort the rows (at this pass's
        clock) into settled and due.

        Only acks changed since this session's watermark are read (nanoclaw.delivery.acks).
        The finished ones that messages_in still has pending are held in :attr:`acks` (with
        those an earlier drain could not fold) for the drain's first delivery record, which completes
        them in its transaction, so a reply's path has no write before its send; a pass with
        nothing to deliver folds them itself. Order matters (nanoclaw.delivery.origin): the
        acks and inbound rows are observed before messages_out is read (a later statement on
        the same connection is a later read), and each request's origin is decided when it is
        first read. Each file is opened once for the pass (each open is probed), read-only and
        fresh for it; a pass with no ack to fold and no row to read does not open inbound.db.
        """
        store = self.sessions.store
        unfolded = self.acks.take_held(session_id)
        try:
            with contextlib.ExitStack() as opened:
                outbound = None
                if layout.outbound_db.exists():
                    outbound = opened.enter_context(
                        sessiondb.reading(layout.outbound_db, confined=True)
                    )
                since = self.acks.since(session_id)
                changed = self.reader.acks_since(layout, since, outbound=outbound)
                # Seen from here on whatever fails next: a failed verdict is kept already.
                acks = self.acks.changed(session_id, changed)
                finished = [mid for mid, status in acks.items() if status in FINISHED]
                unfolded += [mid for mid in finished if mid not in unfolded]
                after_seq, also_seqs = cursor.to_read()
                if not unfolded and not self.reader.outbound_rows(
                    layout, after_seq=after_seq, also_seqs=also_seqs, outbound=outbound
                ):
                    # Nothing to fold and no row to read (a runner's claim, say): inbound.db is
                    # not opened and nothing is observed. The previous observation stays the
                    # one the next request is decided against, which is sound (origin.py).
                    return _PassRead(rows=[], states={}, sorted=_to_try([], {}, now_iso()))
                inbound = opened.enter_context(sessiondb.reading(layout.inbound_db, confined=True))
                if unfolded:
                    pending = set(store.pending_among(layout, unfolded, inbound=inbound))
                    unfolded = [mid for mid in unfolded if mid in pending]
                if finished and outbound is not None:
                    self._read_at_turn_end(session_id, outbound)
                self.origins.observe(session_id, layout, acks, inbound=inbound)
                # Read after the observation (again, when the look above found rows): a
                # request's origin is decided against what was observed before it was read.
                rows = self.reader.outbound_rows(
                    layout, after_seq=after_seq, also_seqs=also_seqs, outbound=outbound
                )
                requests = [(r.id, r.seq, r.in_reply_to) for r in rows if r.kind == "system"]
                read_through = max(rows[-1].seq if rows else 0, cursor.read_to)
                self.origins.first_sight(session_id, layout, requests, read_through=read_through)
                states: dict[str, DeliveryState] = {}
                if rows:
                    states = self.reader.deliveries(layout, [r.id for r in rows], inbound=inbound)
            sort = _to_try(rows, states, now_iso())
            if unfolded and not sort.due:
                store.complete(layout, unfolded)  # no delivery record will carry them
                self.origins.folded(session_id, unfolded)
                unfolded = []
            return _PassRead(rows=rows, states=states, sorted=sort)
        finally:
            if unfolded:
                self.acks.hold(session_id, unfolded)

    def _read_at_turn_end(self, session_id: str, outbound: sqlite3.Connection) -> None:
        for reader in self._turn_end_readers:
            try:
                reader(session_id, outbound)
            except Exception:  # a reader's own fault never fails the pass
                log.exception("turn-end reader failed")

    def failed_among(self, session_id: str, message_ids: frozenset[str]) -> frozenset[str]:
        """Which of these finished inbound ids of the session ended ``failed`` (not answered)."""
        return self.acks.failed_among(session_id, message_ids)

    async def report_done(
        self, session_id: str, finished: set[str], *, failed: bool = False
    ) -> None:
        """Tell turn-done listeners (typing, waiting CLI clients, tasks, budget) once per message.

        Also used for a message the sweep gave up on (``failed``): no turn will ever complete it.
        """
        if failed:
            self.acks.note_failed(session_id, finished)
        if not self._turn_done_listeners:
            return
        new = self.acks.take_unreported(session_id, finished)
        if not new:
            return
        for listener in self._turn_done_listeners:
            try:
                await listener(session_id, new)
            except Exception:
                log.exception("turn-done listener failed")
        self.acks.drop_verdicts(session_id, new)  # asked for by the listeners above only

    # -- one row ----------------------------------------------------------------------------------
    async def _deliver_one(
        self,
        session: SessionRow,
        layout: SessionLayout,
        row: OutboundRow,
        state: DeliveryState | None,
        *,
        last: bool = False,
    ) -> bool:
        """Try one row; return whether it reached a terminal state. ``last``: the last row of
        its chat in this pass (its delivery record may share the next write's commit)."""
        attempts = (state.attempts if state else 0) + 1
        if row.id in self._sent_unrecorded:
            await self._record(
                session,
                layout,
                row.id,
                status="delivered",
                attempts=attempts,
                platform_message_id=self._sent_unrecorded[row.id],
            )
            del self._sent_unrecorded[row.id]
            self._clean_outbox(layout, row)
            return True
        try:
            if row.kind == "system":
                await self._run_action(session, layout, row)
                platform_id = None
            elif row.channel_type == "agent":
                platform_id = await self.agents.deliver(session, layout, row)
            else:
                platform_id = await self._deliver_to_channel(session, layout, row)
        except DeliveryDeferredError as exc:
            # A platform rate limit: the wait is not an attempt (channels/outbound.py).
            await self._record(
                session,
                layout,
                row.id,
                status="retrying",
                attempts=attempts - 1,
                error=str(exc),
                next_attempt_at=to_iso(utc_now() + timedelta(seconds=exc.retry_after_s)),
            )
            log.info("delivery of %s deferred: %s", row.id, exc)
            return False
        except Exception as exc:
            retryable = isinstance(exc, DeliveryError) and exc.retryable
            if not isinstance(exc, NanoclawError):
                retryable = True
                log.exception("delivery of %s raised", row.id)
            if retryable and attempts < self.settings.delivery_max_attempts:
                retry_after_s = getattr(exc, "retry_after_s", None) or 0.0
                backoff = timedelta(seconds=max(2 ** (attempts - 1), retry_after_s))
                await self._record(
                    session,
                    layout,
                    row.id,
                    status="retrying",
                    attempts=attempts,
                    error=str(exc),
                    next_attempt_at=to_iso(utc_now() + backoff),
                )
                log.warning("delivery of %s failed (attempt %d): %s", row.id, attempts, exc)
                return False
            await self._record(
                session,
                layout,
                row.id,
                status="failed",
                attempts=attempts,
                error=str(exc),
            )
            log.error(
                "delivery of %s failed for good after %d attempt(s): %s", row.id, attempts, exc
            )
            if not isinstance(exc, AgentLimitError):  # both agents were told why already
                await self._tell_agent_of_failure(session, layout, row, str(exc))
            return True
        self._sent_unrecorded[row.id] = platform_id
        await self._record(
            session,
            layout,
            row.id,
            status="delivered",
            attempts=attempts,
            platform_message_id=platform_id,
            linger=last and row.kind != "system",
        )
        del self._sent_unrecorded[row.id]
        self._clean_outbox(layout, row)
        return True

    async def _record(
        self,
        session: SessionRow,
        layout: SessionLayout,
        row_id: str,
        *,
        linger: bool = False,
        **outcome: Any,
    ) -> None:
        """Write one delivery record, folding in the session's unfolded acks (one transaction)."""
        fold = self.acks.take_held(session.id)
        try:
            await self.writes.record_delivery(
                session.id, layout, row_id, complete=fold, linger=linger, **outcome
            )
        except BaseException:
            self.acks.hold(session.id, fold)  # maybe not written: the next record or pass
            raise
        self.origins.folded(session.id, fold)

    async def _deliver_to_channel(
        self, session: SessionRow, layout: SessionLayout, row: OutboundRow
    ) -> str | None:
        if not row.channel_type or not row.platform_id:
            raise UnauthorizedDestinationError(f"message {row.id} has no destination")
        await self._authorize_chat(session, row.channel_type, row.platform_id)
        adapter = self.channels.get(row.channel_type)
        if adapter is None:
            raise DeliveryError(f"no {row.channel_type} adapter is running")
        files: tuple[OutboundFile, ...] = ()
        if row.content.get("files"):  # most replies have none: no thread hop for them
            files = await self.executors.blocking.run(self._load_files, layout, row)
        name = self._agent_names.get(session.agent_group_id)
        if name is None:  # looked up once per agent group while the host runs
            name = await self.executors.central.run(self._agent_name, session.agent_group_id)
            self._agent_names[session.agent_group_id] = name
        payload = OutboundPayload(
            kind=row.kind,
            content=row.content,
            files=files,
            sender_name=name,
            delivery_key=f"{session.id}/{row.id}",
        )
        try:
            async with asyncio.timeout(self.settings.delivery_send_timeout_s):
                return await adapter.deliver(row.platform_id, row.thread_id, payload)
        except TimeoutError:
            raise DeliveryError(
                f"{row.channel_type} send timed out after {self.settings.delivery_send_timeout_s:g} s"
            ) from None

    async def _authorize_chat(
        self, session: SessionRow, channel_type: str, platform_id: str
    ) -> None:
        """Raise unless the session's agent may send to this chat (its own, or a destination)."""
        mg = await self.executors.central.run(self.repo.messaging_group, channel_type, platform_id)
        if mg is None:
            raise UnauthorizedDestinationError(f"unknown chat {channel_type}/{platform_id}")
        if mg.id == session.messaging_group_id:
            return  # looked up for every row: a chat can be deleted or moved meanwhile
        allowed = {
            d.target_id
            for d in await self.executors.central.run(
                self.repo.destinations, session.agent_group_id
            )
            if d.target_type == "channel"
        }
        if mg.id not in allowed:
            raise UnauthorizedDestinationError(
                f"agent may not send to {channel_type}/{platform_id}"
            )

    def _bucket(self, session_id: str) -> TokenBucket:
        bucket = self._buckets.get(session_id)
        if bucket is None:
            bucket = TokenBucket(
                rate_per_s=self.settings.delivery_rate_per_session_per_s,
                burst=self.settings.delivery_burst_per_session,
                clock=self.clock,
            )
            self._buckets[session_id] = bucket
        return bucket

    def _agent_name(self, agent_group_id: str) -> str:
        """The name the agent answers as (its assistant name, else its group's name)."""
        config = self.repo.container_config(agent_group_id)
        return config.assistant_name or self.repo.agent_group(agent_group_id).name

    async def _run_action(
        self, session: SessionRow, layout: SessionLayout, row: OutboundRow
    ) -> None:
        result = await self.actions.run(session, row)
        if not result.reply_to_agent:
            return
        await self.write_to_agent(
            session,
            layout,
            action_result_content(row, result.status, result.text),
            kind="system",
            trigger=1,
            id_hint=f"result-{row.id}",
        )

    async def write_to_agent(
        self,
        session: SessionRow,
        layout: SessionLayout,
        content: dict[str, object],
        *,
        kind: str = "chat",
        trigger: int = 1,
        id_hint: str | None = None,
    ) -> None:
        """Write a host notice or result into the agent's own inbound queue, and wake it."""
        await self.writes.insert_messages(
            session.id,
            layout,
            [
                InboundMessage(
                    id=id_hint or new_id(NOTICE_PREFIX.rstrip("-")),
                    kind=kind,
                    content={"sender": "system", **content},
                    channel_type="agent",
                    platform_id=session.agent_group_id,
                    trigger=trigger,
                )
            ],
        )
        if trigger:
            self.wake(session.id)

    async def _tell_agent_of_failure(
        self, session: SessionRow, layout: SessionLayout, row: OutboundRow, error: str
    ) -> None:
        # A failed reply to a failure notice is not noticed again: that would loop forever.
        if (row.in_reply_to or "").startswith(NOTICE_PREFIX):
            return
        preview = str(row.content.get("text", ""))[:200]
        await self.write_to_agent(
            session,
            layout,
            {"text": f"Delivery failed for your message ({error}): {preview}"},
            id_hint=f"{NOTICE_PREFIX}failed-{row.id}",
        )

    def _load_files(self, layout: SessionLayout, row: OutboundRow) -> tuple[OutboundFile, ...]:
        names = row.content.get("files") or []
        if not names:
            return ()
        if not isinstance(names, list):
            raise DeliveryError(f"message {row.id}: 'files' is not a list", retryable=False)
        return read_outbox_files(layout, row.id, [str(name) for name in names])

    def _clean_outbox(self, layout: SessionLayout, row: OutboundRow) -> None:
        if not row.content.get("files"):
            return
        # A cleanup failure must never cause a resend.
        with contextlib.suppress(Exception), ConfinedDir.open(layout.root, "outbox") as outbox:
            outbox.remove_tree(safe_name(row.id))


def read_outbox_files(
    layout: SessionLayout, message_id: str, names: list[str]
) -> tuple[OutboundFile, ...]:
    """The files of one outbound message, each opened beneath the session folder's descriptor."""
    try:
        with ConfinedDir.open(layout.root, "outbox", safe_name(message_id)) as folder:
            return tuple(
                OutboundFile(
                    filename=name,
                    data=folder.read_bytes(safe_name(name), max_bytes=MAX_OUTBOX_FILE_BYTES),
                )
                for name in names
            )
    except FileNotFoundError as exc:
        raise DeliveryError(
            f"file {exc.filename or '?'} of message {message_id} is not in the outbox",
            retryable=False,
        ) from exc


def _lane(row: OutboundRow) -> tuple[str | None, ...]:
    """Rows of one lane go out one by one; lanes run side by side.

    A lane is one destination chat; system actions share one lane, so an action and the
    next action of the same session never overtake each other.
    """
    if row.kind == "system":
        return ("system",)
    return (row.channel_type, row.platform_id)
