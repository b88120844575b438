"""Sessions' ``last_active``: marked on every routed message, written in one batch per interval."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from nanoclaw.contract.timeutil import utc_now
from nanoclaw.db.repository import Repository
from nanoclaw.executors import Executors
from nanoclaw.tasks import Spawn

log = logging.getLogger("nanoclaw.sessions")

# At most one central write of ``last_active`` per this interval, off the message path.
ACTIVITY_WRITE_EVERY_S = 0.25


class SessionActivity:
    """Coalesces ``last_active`` writes: the first mark schedules one write, later marks join it.

    ``last_active`` is shown by ``status`` and orders a lookup among duplicate active sessions;
    choosing a runner to stop uses the supervisor's own clock. So a write that lags by
    :data:`ACTIVITY_WRITE_EVERY_S`, or one lost with a killed host, changes no decision. The host
    writes what is still marked when it stops (:meth:`flush`).
    """

    def __init__(
        self,
        *,
        executors: Executors,
        repo: Repository,
        spawn: Spawn,
        clock: Callable[[], datetime] = utc_now,
        write_every_s: float = ACTIVITY_WRITE_EVERY_S,
    ) -> None:
        self.executors = executors
        self.repo = repo
        self.spawn = spawn
        self.clock = clock
        self.write_every_s = write_every_s
        self._marked: set[str] = set()
        self._at: datetime | None = None
        self._scheduled = False

    def mark(self, session_ids: Iterable[str]) -> None:
        """On the event loop: these sessions were active now."""
        self._marked.update(session_ids)
        if not self._marked:
            return
        self._at = self.clock()
        if not self._scheduled:
            self._scheduled = True
            self.spawn(self._write_soon(), "session-activity")

    async def _write_soon(self) -> None:
        try:
            await asyncio.sleep(self.write_every_s)
        finally:
            self._scheduled = False
        await self.flush()

    async def flush(self) -> None:
        """Write every marked session's ``last_active`` now (one central transaction)."""
        if not self._marked:
            return
        ids, at = sorted(self._marked), self._at
        self._marked = set()
        try:
            await self.executors.central.run(self.repo.touch_sessions, ids, at=at)
        except Exception as exc:  # only a timestamp: nothing the host or a user waits on
            log.warning("could not record the activity of %d session(s): %s", len(ids), exc)
