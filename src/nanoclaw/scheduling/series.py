"""Which sessions hold no recurring row, so that a finished turn there needs no re-arm look."""

from __future__ import annotations

import itertools
import threading

from nanoclaw.contract import sessiondb
from nanoclaw.contract.layout import SessionLayout


def has_series(layout: SessionLayout) -> bool:
    """Blocking: whether any row of the session carries a ``recurrence`` (live or ended)."""
    with sessiondb.reading(layout.inbound_db, confined=True) as conn:
        found = conn.execute(
            "SELECT 1 FROM messages_in WHERE recurrence IS NOT NULL LIMIT 1"
        ).fetchone()
    return found is not None


class SeriesIndex:
    """The sessions seen to hold no recurring row since this host started.

    A session enters after a look found none; any write that may add one
    (``SessionStore.add_series_listener``) takes it out again. A look that raced such a write
    is not recorded: each write moves an epoch, and :meth:`note_none` is given the epoch read
    before the look. Nothing is known at start-up, so each session is looked at once. No other
    process writes ``inbound.db`` while the host runs (``nanoclaw import`` stops it first);
    the sweep, which re-arms on its own pass every session whose files changed, is the net.
    """

    def __init__(self) -> None:
        self._without: set[str] = set()
        self._epochs = itertools.count(1)
        self._epoch = 0
        self._lock = threading.Lock()

    def written(self, layout: SessionLayout) -> None:
        """``SessionStore`` series listener; may be called from a worker thread."""
        with self._lock:
            self._epoch = next(self._epochs)
            self._without.discard(layout.root.name)

    def epoch(self) -> int:
        with self._lock:
            return self._epoch

    def forget(self, session_id: str) -> None:
        """The session is gone from the central DB."""
        with self._lock:
            self._without.discard(session_id)

    def none_in(self, session_id: str) -> bool:
        with self._lock:
            return session_id in self._without

    def note_none(self, session_id: str, *, looked_at_epoch: int) -> None:
        """A look begun at ``looked_at_epoch`` found no recurring row in the session."""
        with self._lock:
            if self._epoch == looked_at_epoch:
                self._without.add(session_id)
