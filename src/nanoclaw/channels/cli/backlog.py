"""The terminal channel's durable backlog: every reply is a ``cli_replies`` row until a client acks it.

A reply is stored before any client sees it, so a reply for a chat with no client (or a client
that vanishes before acknowledging) survives host restarts and is shown, in order, to the next
client of that chat. ``delivered_at`` is set by the client's ``ack``. Unacknowledged replies
per chat are bounded (``per_chat_max``): beyond it the oldest are deleted and counted in
``cli_chat_state.dropped``, which the next client of the chat is told once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from nanoclaw.contract.timeutil import to_iso, utc_now
from nanoclaw.db.central import CentralDB

DEFAULT_PER_CHAT_MAX = 10_000
ACKED_KEPT_PER_CHAT = 100  # delivered rows kept for inspection; older ones are pruned
REPLAY_PAGE_ROWS = 500
REPLY_ID_PREFIX = "cli-"


@dataclass(frozen=True)
class StoredReply:
    id: int
    frame: str  # the reply frame's JSON without ``id``


def reply_id(row_id: int) -> str:
    return f"{REPLY_ID_PREFIX}{row_id}"


def row_id_of(frame_id: str) -> int | None:
    """The row id named by a reply frame id ``cli-<n>``; None for anything else."""
    digits = frame_id.removeprefix(REPLY_ID_PREFIX)
    if frame_id == digits or not digits.isdigit() or len(digits) > 18:
        return None
    return int(digits)


class CliBacklog:
    """Blocking store calls (run them off the event loop); each is one short transaction."""

    def __init__(
        self,
        *,
        db: CentralDB,
        per_chat_max: int = DEFAULT_PER_CHAT_MAX,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.db = db
        self.per_chat_max = per_chat_max
        self.clock = clock

    def add(
        self, chat: str, frame_json: str, *, delivery_key: str | None = None
    ) -> tuple[int, bool]:
        """Store one reply; return (its row id, whether it is new). Drops (and counts) the oldest
        beyond the bound.

        A reply whose ``delivery_key`` is already stored (the outbound row was re-sent because the
        host crashed before recording its delivery) is not stored again: its first row is returned.
        """
        with self.db.plain() as conn:
            if delivery_key is not None:
                known = conn.execute(
                    "SELECT id FROM cli_replies WHERE delivery_key = ?", (delivery_key,)
                ).fetchone()
                if known is not None:
                    return int(known[0]), False
            inserted = conn.execute(
                "INSERT INTO cli_replies (chat, frame, created_at, delivery_key) VALUES (?, ?, ?, ?)",
                (chat, frame_json, to_iso(self.clock()), delivery_key),
            )
            row_id = inserted.lastrowid
            assert row_id is not None
            (pending,) = conn.execute(
                "SELECT count(*) FROM cli_replies WHERE chat = ? AND delivered_at IS NULL", (chat,)
            ).fetchone()
            excess = int(pending) - self.per_chat_max
            if excess > 0:
                conn.execute(
                    "DELETE FROM cli_replies WHERE id IN (SELECT id FROM cli_replies"
                    " WHERE chat = ? AND delivered_at IS NULL ORDER BY id LIMIT ?)",
                    (chat, excess),
                )
                conn.execute(
                    "INSERT INTO cli_chat_state (chat, dropped) VALUES (?, ?)"
                    " ON CONFLICT (chat) DO UPDATE SET dropped = dropped + excluded.dropped",
                    (chat, excess),
                )
            return row_id, True

    def take_dropped(self, chat: str) -> int:
        """How many replies the bound dropped since the last call for this chat (then zero)."""
        with self.db.plain() as conn:
            state = conn.execute(
                "SELECT dropped FROM cli_chat_state WHERE chat = ?", (chat,)
            ).fetchone()
            if state is None or not state[0]:
                return 0
            conn.execute("UPDATE cli_chat_state SET dropped = 0 WHERE chat = ?", (chat,))
            return int(state[0])

    def pending(
        self, chat: str, *, after_id: int = 0, limit: int = REPLAY_PAGE_ROWS
    ) -> list[StoredReply]:
        """Unacknowledged replies of a chat after ``after_id``, oldest first."""
        with self.db.plain(write=False) as conn:
            rows = conn.execute(
                "SELECT id, frame FROM cli_replies WHERE chat = ? AND delivered_at IS NULL"
                " AND id > ? ORDER BY id LIMIT ?",
                (chat, after_id, limit),
            ).fetchall()
        return [StoredReply(row_id, frame) for row_id, frame in rows]

    def ack(self, chat: str, row_ids: Sequence[int]) -> int:
        """Record these replies of ``chat`` delivered; returns how many were newly acknowledged."""
        if not row_ids:
            return 0
        ids = list(row_ids)
        marks = ", ".join("?" * len(ids))  # one ``?`` per id (an ack frame names at most 1000)
        with self.db.plain() as conn:
            acked = conn.execute(
                "UPDATE cli_replies SET delivered_at = ?"
                f" WHERE chat = ? AND delivered_at IS NULL AND id IN ({marks})",
                (to_iso(self.clock()), chat, *ids),
            ).rowcount
            conn.execute(
                "DELETE FROM cli_replies WHERE chat = ? AND delivered_at IS NOT NULL"
                " AND id NOT IN (SELECT id FROM cli_replies"
                " WHERE chat = ? AND delivered_at IS NOT NULL ORDER BY id DESC LIMIT ?)",
                (chat, chat, ACKED_KEPT_PER_CHAT),
            )
            return max(acked, 0)

    def counts(self, chat: str) -> tuple[int, int]:
        """(unacknowledged, delivered) rows kept for a chat."""
        with self.db.plain(write=False) as conn:
            (kept, done) = conn.execute(
                "SELECT count(*), count(delivered_at) FROM cli_replies WHERE chat = ?", (chat,)
            ).fetchone()
        return int(kept) - int(done), int(done)
