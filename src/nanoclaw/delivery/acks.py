"""Per-session ack state by watermark: changed acks, finished ones to fold, failed verdicts, turn-done owed once.

Where message status lives: ``inbound.db.messages_in.status`` is the status; the runner's
``processing_ack`` (it cannot write ``inbound.db``) is the report the host folds into it.
Acks are compared by ``status_changed`` (fixed-width UTC ISO-8601, so string order is time
order). Rows changed within :data:`ACK_REREAD_MARGIN_S` of the watermark are read again each
pass (two acks can share a timestamp, and one may commit after the other was read); a status
seen already is not reported twice.

A finished ack that ``messages_in`` still has pending is *held* until a delivery record (or
the pass itself) completes it in ``inbound.db``; ids taken and not written are held again, so
none is dropped while the host runs (after a restart the acks are read again from the start).
A ``failed`` verdict is kept from the moment its ack is seen, so a pass that raises later
cannot turn a failed turn into a success for the clients told of it.

Everything kept per session is bounded: statuses only inside the margin, turn-done owed only
until reported, held ids only until folded, failed verdicts only until their turn-done is
reported (at most :data:`FAILED_KEPT`), and the last :data:`REPORTED_KEPT` reported ids. The
tracker is read and updated both from a session's lane (inside the delivery pass) and from the
event loop, so each method holds one lock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import timedelta

from nanoclaw.contract.sessiondb import AckRow, AckStatus
from nanoclaw.contract.timeutil import parse_iso, to_iso

ACK_REREAD_MARGIN_S = 2.0
# Per session; every session the host has served keeps its entry until the host stops. At 512
# reported ids, with failed verdicts kept after their report, a host that had served 1,000
# sessions held about 78 MB here (benchmarks/session_state.py). A duplicate turn-done (a status
# rewritten after it was reported) would have to come more than REPORTED_KEPT reports later to
# get through; none is known to (the sweep deletes the claims it gives up on, and acks re-read
# inside the margin are caught by ``seen``).
REPORTED_KEPT = 32  # ids whose turn-done was reported (a late duplicate is dropped)
# Failed verdicts are kept only for turns not reported yet, and dropped after their report, so
# this bound is met only by failures piling up while a session's turn-done waits (a row that
# keeps retrying) or a host with no listener.
FAILED_KEPT = 512
FINISHED = frozenset({AckStatus.COMPLETED.value, AckStatus.FAILED.value})


@dataclass
class _SessionAcks:
    watermark: str | None = None
    seen: dict[str, tuple[str, str]] = field(default_factory=dict)  # id → (status, changed)
    owed: set[str] = field(default_factory=set)  # finished, turn-done not reported yet
    reported: OrderedDict[str, None] = field(default_factory=OrderedDict)
    held: list[str] = field(default_factory=list)  # finished, still pending in messages_in
    failed: OrderedDict[str, None] = field(default_factory=OrderedDict)


class AckTracker:
    def __init__(self) -> None:
        self._sessions: dict[str, _SessionAcks] = {}
        self._lock = threading.Lock()

    def since(self, session_id: str) -> str | None:
        """Read acks whose ``status_changed`` is at or after this (None: all of them)."""
        with self._lock:
            return self._since(session_id)

    def _since(self, session_id: str) -> str | None:
        state = self._sessions.get(session_id)
        if state is None or state.watermark is None:
            return None
        return to_iso(parse_iso(state.watermark) - timedelta(seconds=ACK_REREAD_MARGIN_S))

    def changed(self, session_id: str, rows: list[AckRow]) -> dict[str, str]:
        """The acks among ``rows`` (read ``since``) whose status was not seen yet; a new
        ``failed`` one is kept as the turn's verdict."""
        with self._lock:
            return self._changed(session_id, rows)

    def _changed(self, session_id: str, rows: list[AckRow]) -> dict[str, str]:
        state = self._sessions.setdefault(session_id, _SessionAcks())
        new: dict[str, str] = {}
        for row in rows:
            if state.seen.get(row.message_id, ("", ""))[0] != row.status:
                new[row.message_id] = row.status
                if row.status in FINISHED and row.message_id not in state.reported:
                    state.owed.add(row.message_id)
                if row.status == AckStatus.FAILED.value and row.message_id not in state.reported:
                    _keep(state.failed, row.message_id, FAILED_KEPT)
            state.seen[row.message_id] = (row.status, row.status_changed)
            if state.watermark is None or row.status_changed > state.watermark:
                state.watermark = row.status_changed
        floor = self._since(session_id)
        if floor is not None:
            state.seen = {k: v for k, v in state.seen.items() if v[1] >= floor}
        return new

    def owed(self, session_id: str) -> frozenset[str]:
        """Finished messages whose turn-done has not been reported."""
        with self._lock:
            state = self._sessions.get(session_id)
            return frozenset(state.owed) if state is not None else frozenset()

    def take_unreported(self, session_id: str, finished: set[str]) -> frozenset[str]:
        """Of ``finished``, those not reported yet; they count as reported from now on."""
        with self._lock:
            state = self._sessions.setdefault(session_id, _SessionAcks())
            new = frozenset(m for m in finished if m not in state.reported)
            for message_id in new:
                _keep(state.reported, message_id, REPORTED_KEPT)
                state.owed.discard(message_id)
            return new

    def note_failed(self, session_id: str, message_ids: set[str]) -> None:
        """These turns ended ``failed`` without an ack saying so (the sweep gave up on them)."""
        with self._lock:
            state = self._sessions.setdefault(session_id, _SessionAcks())
            for message_id in message_ids:
                if message_id not in state.reported:  # no listener asks after its report
                    _keep(state.failed, message_id, FAILED_KEPT)

    def failed_among(self, session_id: str, message_ids: frozenset[str]) -> frozenset[str]:
        """Which of these finished inbound ids ended ``failed`` (not answered)."""
        with self._lock:
            state = self._sessions.get(session_id)
            if state is None:
                return frozenset()
            return frozenset(m for m in message_ids if m in state.failed)

    def drop_verdicts(self, session_id: str, message_ids: frozenset[str]) -> None:
        """Their turn-done was reported (the listeners asked already): the verdicts go."""
        with self._lock:
            state = self._sessions.get(session_id)
            if state is not None:
                for message_id in message_ids:
                    state.failed.pop(message_id, None)

    def hold(self, session_id: str, message_ids: list[str]) -> None:
        """Finished acks still pending in ``messages_in``, for the next record or pass to fold."""
        with self._lock:
            state = self._sessions.setdefault(session_id, _SessionAcks())
            state.held.extend(m for m in message_ids if m not in state.held)

    def sessions(self) -> set[str]:
        """The sessions anything is kept for."""
        with self._lock:
            return set(self._sessions)

    def forget(self, session_id: str) -> None:
        """The session is gone (deleted from the central DB): nothing of it is kept."""
        with self._lock:
            self._sessions.pop(session_id, None)

    def take_held(self, session_id: str) -> list[str]:
        """The held ids, no longer held: the caller folds them in or holds them again."""
        with self._lock:
            state = self._sessions.get(session_id)
            if state is None or not state.held:
                return []
            held, state.held = state.held, []
            return held


def _keep(recent: OrderedDict[str, None], message_id: str, bound: int) -> None:
    recent[message_id] = None
    while len(recent) > bound:
        recent.popitem(last=False)
