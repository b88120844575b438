"""The runner's copy of ``processing_ack``: which rows are claimed, and which finished acks to prune.

The runner is the only writer of ``outbound.db`` while it is alive (invariant 1), so once the
table has been read, every change to it is one this runner made: the copy stays equal to the
table, and a poll needs no read of ``outbound.db`` to skip the rows it claimed or answered.
``SessionDB`` reads the table once, and again at start-up after releasing stale claims; it
updates the copy only after its write committed.

A finished ack whose ``messages_in`` row is no longer pending has done its job (the row is never
pending again) and is pruned at the next claim. Whether a row is still pending is read in
``inbound.db``: in the poll's own snapshot for the acks finished before that poll, else by the
claim itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from nanoclaw.contract.sessiondb import AckStatus

PROCESSING = AckStatus.PROCESSING.value


class AckMirror:
    """``message_id → status`` as in ``processing_ack``, and where each finished ack's prune stands."""

    def __init__(self, rows: Mapping[str, str]) -> None:
        self._status = dict(rows)
        # Finished acks by what is known of their row: not looked at since the ack was written,
        # still pending when last looked at, or folded in by the host (prunable).
        self._unchecked = {i for i, s in self._status.items() if s != PROCESSING}
        self._pending: set[str] = set()
        self._folded: set[str] = set()

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._status

    def status(self, message_id: str) -> str | None:
        return self._status.get(message_id)

    # -- the prune ----------------------------------------------------------------------------
    def to_check(self) -> list[str]:
        """Every finished ack not known to be folded in (a poll looks at all of them)."""
        return sorted(self._unchecked | self._pending)

    def unchecked(self) -> list[str]:
        """Finished acks not looked at since they were written (a claim looks at these)."""
        return sorted(self._unchecked)

    def checked(self, ids: Iterable[str], folded: Iterable[str]) -> None:
        """``ids`` were looked at in one inbound read; ``folded`` of them are no longer pending."""
        gone = set(folded)
        for message_id in ids:
            if self._status.get(message_id, PROCESSING) == PROCESSING:
                continue  # claimed again or dropped since: nothing to prune
            self._unchecked.discard(message_id)
            if message_id in gone:
                self._pending.discard(message_id)
                self._folded.add(message_id)
            else:
                self._pending.add(message_id)

    def prunable(self) -> list[str]:
        """Finished acks whose rows the host folded in: the claim deletes them."""
        return sorted(self._folded)

    # -- changes this runner committed ----------------------------------------------------------
    def set(self, ids: Iterable[str], status: str) -> None:
        for message_id in ids:
            self._forget_prune(message_id)
            self._status[message_id] = status
            if status != PROCESSING:
                self._unchecked.add(message_id)

    def drop(self, ids: Iterable[str]) -> None:
        for message_id in ids:
            self._status.pop(message_id, None)
            self._forget_prune(message_id)

    def _forget_prune(self, message_id: str) -> None:
        self._unchecked.discard(message_id)
        self._pending.discard(message_id)
        self._folded.discard(message_id)
