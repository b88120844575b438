"""The due-work timer: start a session at the moment its earliest delayed row becomes due.

A runner only takes rows whose ``process_after`` has passed, so something must wake the
session at that moment; waiting for the next sweep would start a task up to a minute late.
The timer keeps the earliest future due time per session and sleeps until the earliest
of all. It learns about rows from the host's own inserts (a ``SessionStore`` listener),
from the sweep, and from changes of any known ``inbound.db`` seen each ``SCAN_INTERVAL_S`` (writes by other
processes, e.g. ``nanoclaw tasks resume``): inotify events where they work, else the file's
change counter. The
sweep remains the safety net.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from nanoclaw.contract.dbwatch import change_signature
from nanoclaw.contract.layout import SessionLayout
from nanoclaw.contract.timeutil import parse_iso, to_iso, utc_now
from nanoclaw.contract.watcher import ChangeWatcher
from nanoclaw.executors import Executors
from nanoclaw.sweep.settled import Signature
from nanoclaw.tasks import Spawn

log = logging.getLogger("nanoclaw.sweep.timer")

SCAN_INTERVAL_S = 1.0
# Fire this long before the due time: a runner takes a moment to start, and the action
# nudges the (then live) runner at the due time itself.
DEFAULT_LEAD_S = 1.0

_UNKNOWN: Signature = (-1, -1)  # no restored due time

DueAction = Callable[[str, datetime], Awaitable[None]]
NextDue = Callable[[SessionLayout, str], str | None]


class DueTimer:
    def __init__(
        self,
        *,
        executors: Executors,
        on_due: DueAction,
        next_due: NextDue,
        spawn: Spawn,
        clock: Callable[[], datetime] = utc_now,
        lead_s: float = DEFAULT_LEAD_S,
    ) -> None:
        self.executors = executors
        self.on_due = on_due
        self.lead = timedelta(seconds=lead_s)
        self.next_due = next_due
        self.spawn = spawn  # the host's task owner
        self.clock = clock
        self._due: dict[str, datetime] = {}
        self._fired: dict[str, datetime] = {}  # the last due time acted on, per session
        self._layouts: dict[str, SessionLayout] = {}
        self._watched: set[str] = set()
        self._restored: dict[str, Signature] = {}  # due time known at this signature
        self._watcher = ChangeWatcher(
            fast_interval_s=SCAN_INTERVAL_S, slow_interval_s=SCAN_INTERVAL_S
        )
        self._changed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- feeding -------------------------------------------------------------------------------
    def track(self, session_id: str, layout: SessionLayout) -> None:
        self._layouts[session_id] = layout

    def restore(
        self, session_id: str, layout: SessionLayout, at: str | None, *, inbound: Signature
    ) -> None:
        """Track a session whose next due time is known: the sweep's settled record, with its
        ``inbound.db`` at change signature ``inbound`` since. It is not re-read when first
        watched unless the file changed meanwhile (a restart reads no settled session)."""
        self.track(session_id, layout)
        self.note(session_id, at)
        self._restored[session_id] = inbound

    def layout(self, session_id: str) -> SessionLayout | None:
        return self._layouts.get(session_id)

    def tracked(self) -> set[str]:
        """The sessions the timer keeps anything for (each union is one C call: the insert
        listener's thread cannot change a dict while it is read)."""
        return self._layouts.keys() | self._due.keys() | self._fired.keys() | self._restored.keys()

    def forget(self, session_id: str) -> None:
        """The session is gone from the central DB: it is never refreshed or fired again."""
        self._layouts.pop(session_id, None)
        self._due.pop(session_id, None)
        self._fired.pop(session_id, None)
        self._restored.pop(session_id, None)
        if session_id in self._watched:
            self._watched.discard(session_id)
            self._watcher.unwatch(session_id)

    def note(self, session_id: str, at: str | None) -> None:
        """Record a session's earliest future due time (None: nothing due later)."""
        if at is None:
            self._due.pop(session_id, None)
        else:
            moment = parse_iso(at)
            current = self._due.get(session_id)
            if current is None or moment < current or current - self.lead <= self.clock():
                self._due[session_id] = moment
        self._changed.set()

    def inserted(self, layout: SessionLayout) -> None:
        """``SessionStore`` insert listener; may be called from a worker thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        session_id = layout.root.name
        self._layouts.setdefault(session_id, layout)
        loop.call_soon_threadsafe(lambda: self.spawn(self.refresh(session_id), "due-refresh"))

    async def refresh(self, session_id: str, *, after: datetime | None = None) -> None:
        """Re-read the session's earliest due time later than ``after`` (default: now)."""
        layout = self._layouts.get(session_id)
        if layout is None:
            return
        since = max(after, self.clock()) if after is not None else self.clock()
        fired = self._fired.get(session_id)
        if fired is not None and fired > since:
            since = fired  # already acted on; only later rows are news
        try:
            at = await self.executors.sessions.run(session_id, self.next_due, layout, to_iso(since))
        except Exception as exc:  # one bad session never stops the timer
            log.warning("cannot read due rows of %s: %s", session_id, exc)
            return
        if session_id not in self._layouts:
            return  # forgotten while it was read
        self._due.pop(session_id, None)
        self.note(session_id, at)

    def due_at(self, session_id: str) -> datetime | None:
        """The session's earliest future due time as the timer holds it."""
        return self._due.get(session_id)

    def earliest(self) -> datetime | None:
        return min(self._due.values()) if self._due else None

    # -- loop ------------------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            await self._run()
        finally:
            self._watcher.close()  # its inotify instance (a per-user kernel limit, 128 by default)

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        next_scan = self._loop.time() + SCAN_INTERVAL_S
        while True:
            now = self.clock()
            for session_id, at in [(s, at) for s, at in self._due.items() if at - self.lead <= now]:
                self._due.pop(session_id, None)
                self._fired[session_id] = at
                try:
                    await self.on_due(session_id, at)
                except Exception:
                    log.exception("due work of %s could not start", session_id)
                await self.refresh(session_id, after=at)
            if self._loop.time() >= next_scan:
                next_scan = self._loop.time() + SCAN_INTERVAL_S
                await self._scan()
            earliest = self.earliest()
            timeout = max(0.0, next_scan - self._loop.time())
            if earliest is not None:
                until = (earliest - self.lead - self.clock()).total_seconds()
                timeout = max(0.0, min(timeout, until))
            self._changed.clear()
            # Not wait_for: on Python 3.11 it can swallow a cancel that races the event.
            waiter = asyncio.ensure_future(self._changed.wait())
            try:
                await asyncio.wait({waiter}, timeout=timeout)
            finally:
                waiter.cancel()

    async def _scan(self) -> None:
        """Refresh sessions whose inbound.db changed: inotify events (no per-session cost while
        nothing changes), change counters for files inotify cannot watch."""
        for session_id, layout in list(self._layouts.items()):
            if session_id not in self._watched:
                self._watched.add(session_id)
                self._watcher.watch(session_id, layout.inbound_db)
                restored = self._restored.pop(session_id, _UNKNOWN)
                if restored is _UNKNOWN or change_signature(layout.inbound_db) != restored:
                    await self.refresh(session_id)
        for session_id in await self._watcher.wait(0):
            await self.refresh(session_id)
