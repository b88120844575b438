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

from sqlalchemy import delete, func, select, update

from nanoclaw.contract.timeutil import utc_now
from nanoclaw.db.central import CentralDB
from nanoclaw.db.models import CliChatState, CliReply

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

    def add(self, chat: str, frame_json: str, *, delivery_key: str | None = None) -> tuple[int, bool]:
        """Store one reply; return (its row id, whether it is new). Drops (and counts) the oldest
        beyond the bound.

        A reply whose ``delivery_key`` is already stored (the outbound row was re-sent because the
        host crashed before recording its delivery) is not stored again: its first row is returned.
        """
        with self.db.session() as s:
            if delivery_key is not None:
                known = s.scalar(select(CliReply.id).where(CliReply.delivery_key == delivery_key))
                if known is not None:
                    return known, False
            row = CliReply(
                chat=chat, frame=frame_json, created_at=self.clock(), delivery_key=delivery_key
            )
            s.add(row)
            s.flush()
            pending = s.scalar(
                select(func.count())
                .select_from(CliReply)
                .where(CliReply.chat == chat, CliReply.delivered_at.is_(None))
            )
            excess = int(pending or 0) - self.per_chat_max
            if excess > 0:
                oldest = (
                    select(CliReply.id)
                    .where(CliReply.chat == chat, CliReply.delivered_at.is_(None))
                    .order_by(CliReply.id)
                    .limit(excess)
                )
                s.execute(delete(CliReply).where(CliReply.id.in_(oldest)))
                state = s.get(CliChatState, chat)
                if state is None:
                    s.add(CliChatState(chat=chat, dropped=excess))
                else:
                    state.dropped += excess
            return row.id, True

    def take_dropped(self, chat: str) -> int:
        """How many replies the bound dropped since the last call for this chat (then zero)."""
        with self.db.session() as s:
            state = s.get(CliChatState, chat)
            if state is None or not state.dropped:
                return 0
            dropped = state.dropped
            state.dropped = 0
            return dropped

    def pending(
        self, chat: str, *, after_id: int = 0, limit: int = REPLAY_PAGE_ROWS
    ) -> list[StoredReply]:
        """Unacknowledged replies of a chat after ``after_id``, oldest first."""
        with self.db.session() as s:
            rows = s.execute(
                select(CliReply.id, CliReply.frame)
                .where(
                    CliReply.chat == chat,
                    CliReply.delivered_at.is_(None),
                    CliReply.id > after_id,
                )
                .order_by(CliReply.id)
                .limit(limit)
            ).all()
        return [StoredReply(row_id, frame) for row_id, frame in rows]

    def ack(self, chat: str, row_ids: Sequence[int]) -> int:
        """Record these replies of ``chat`` delivered; returns how many were newly acknowledged."""
        if not row_ids:
            return 0
        with self.db.session() as s:
            result = s.execute(
                update(CliReply)
                .where(
                    CliReply.chat == chat,
                    CliReply.id.in_(list(row_ids)),
                    CliReply.delivered_at.is_(None),
                )
                .values(delivered_at=self.clock())
            )
            kept = (
                select(CliReply.id)
                .where(CliReply.chat == chat, CliReply.delivered_at.is_not(None))
                .order_by(CliReply.id.desc())
                .limit(ACKED_KEPT_PER_CHAT)
            )
            s.execute(
                delete(CliReply).where(
                    CliReply.chat == chat,
                    CliReply.delivered_at.is_not(None),
                    CliReply.id.not_in(kept),
                )
            )
            return int(getattr(result, "rowcount", 0) or 0)

    def counts(self, chat: str) -> tuple[int, int]:
        """(unacknowledged, delivered) rows kept for a chat."""
        with self.db.session() as s:
            pending = s.scalar(
                select(func.count())
                .select_from(CliReply)
                .where(CliReply.chat == chat, CliReply.delivered_at.is_(None))
            )
            done = s.scalar(
                select(func.count())
                .select_from(CliReply)
                .where(CliReply.chat == chat, CliReply.delivered_at.is_not(None))
            )
        return int(pending or 0), int(done or 0)
