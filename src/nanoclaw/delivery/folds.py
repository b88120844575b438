"""Acked rows still pending in ``messages_in``, carried from a delivery pass to the record that folds them in."""

from __future__ import annotations

import threading
from collections.abc import Iterable


class PendingFolds:
    """Per session, the ids a delivery pass read finished that ``messages_in`` still has pending.

    A pass (on the session's lane) adds them; the first delivery record of the drain (on the
    event loop) takes them and completes them in its own transaction. Ids taken and not
    written are added back, and a pass that fails, or whose drain was cancelled meanwhile,
    adds back what it held: none is dropped while the host runs (after a restart the acks are
    read again from the start). Completing an id twice changes nothing.
    """

    def __init__(self) -> None:
        self._ids: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def add(self, session_id: str, ids: Iterable[str]) -> None:
        with self._lock:
            held = self._ids.setdefault(session_id, [])
            held.extend(mid for mid in ids if mid not in held)
            if not held:
                del self._ids[session_id]

    def take(self, session_id: str) -> list[str]:
        with self._lock:
            return self._ids.pop(session_id, [])
