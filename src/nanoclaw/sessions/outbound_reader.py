"""Host reads of a session: ``messages_out``, acks and runner state through fresh read-only
connections; the row types are the session-DB contract's."""

from __future__ import annotations

from sqlalchemy import func, select

from nanoclaw.contract.layout import SessionLayout
from nanoclaw.contract.sessiondb import (
    AckRow,
    DeliveryState,
    OutboundRow,
    RunnerState,
    parse_content,
)
from nanoclaw.db.sqlite import EngineCache
from nanoclaw.sessions.schema import (
    delivered,
    messages_in,
    messages_out,
    processing_ack,
    runner_state,
)

__all__ = ["DeliveryState", "OutboundRow", "RunnerState", "SessionReader"]


class SessionReader:
    """Read-only views of both session DBs; every call opens and closes its own connection."""

    def __init__(self, *, engines: EngineCache) -> None:
        self.engines = engines

    def outbound_rows(
        self, layout: SessionLayout, *, due_before: str, after_seq: int = 0
    ) -> list[OutboundRow]:
        """Rows above ``after_seq`` that are due, in seq order."""
        if not layout.outbound_db.exists():
            return []
        with self.engines.get(layout.outbound_db, readonly=True).connect() as conn:
            rows = conn.execute(
                select(messages_out)
                .where(
                    messages_out.c.seq > after_seq,
                    (messages_out.c.deliver_after.is_(None))
                    | (messages_out.c.deliver_after <= due_before),
                )
                .order_by(messages_out.c.seq)
            ).all()
        return [
            OutboundRow(
                id=r.id,
                seq=r.seq,
                in_reply_to=r.in_reply_to,
                timestamp=r.timestamp,
                deliver_after=r.deliver_after,
                kind=r.kind,
                channel_type=r.channel_type,
                platform_id=r.platform_id,
                thread_id=r.thread_id,
                content=parse_content(r.content),
            )
            for r in rows
        ]

    def acks(self, layout: SessionLayout) -> dict[str, str]:
        if not layout.outbound_db.exists():
            return {}
        with self.engines.get(layout.outbound_db, readonly=True).connect() as conn:
            rows = conn.execute(select(processing_ack.c.message_id, processing_ack.c.status)).all()
        return {r.message_id: r.status for r in rows}

    def acks_since(self, layout: SessionLayout, since: str | None) -> list[AckRow]:
        """``processing_ack`` rows changed at or after ``since`` (every row when None)."""
        if not layout.outbound_db.exists():
            return []
        query = select(processing_ack)
        if since is not None:
            query = query.where(processing_ack.c.status_changed >= since)
        with self.engines.get(layout.outbound_db, readonly=True).connect() as conn:
            rows = conn.execute(query).all()
        return [AckRow(r.message_id, r.status, r.status_changed) for r in rows]

    def runner_state(self, layout: SessionLayout) -> RunnerState | None:
        if not layout.outbound_db.exists():
            return None
        with self.engines.get(layout.outbound_db, readonly=True).connect() as conn:
            row = conn.execute(select(runner_state)).first()
        if row is None:
            return None
        return RunnerState(
            pid=row.pid,
            started_at=row.started_at,
            current_tool=row.current_tool,
            tool_declared_timeout_ms=row.tool_declared_timeout_ms,
            tool_started_at=row.tool_started_at,
        )

    def deliveries(
        self, layout: SessionLayout, ids: list[str] | None = None
    ) -> dict[str, DeliveryState]:
        query = select(delivered)
        if ids is not None:
            query = query.where(delivered.c.message_out_id.in_(ids))
        with self.engines.get(layout.inbound_db, readonly=True).connect() as conn:
            rows = conn.execute(query).all()
        return {
            r.message_out_id: DeliveryState(
                status=r.status,
                attempts=r.attempts,
                next_attempt_at=r.next_attempt_at,
                platform_message_id=r.platform_message_id,
            )
            for r in rows
        }

    def all_delivered(self, layout: SessionLayout) -> bool:
        """Whether every ``messages_out`` row has a terminal ``delivered`` record.

        By count: rows are never deleted from either table and ``delivered`` holds only ids
        read from ``messages_out``, so equal counts mean nothing is left to deliver.
        """
        if not layout.outbound_db.exists():
            return True
        with self.engines.get(layout.outbound_db, readonly=True).connect() as conn:
            written = conn.execute(select(func.count()).select_from(messages_out)).scalar()
        with self.engines.get(layout.inbound_db, readonly=True).connect() as conn:
            done = conn.execute(
                select(func.count())
                .select_from(delivered)
                .where(delivered.c.status.in_(("delivered", "failed")))
            ).scalar()
        return int(written or 0) == int(done or 0)

    def pending_counts(self, layout: SessionLayout) -> dict[str, int]:
        with self.engines.get(layout.inbound_db, readonly=True).connect() as conn:
            rows = conn.execute(select(messages_in.c.status)).all()
        counts: dict[str, int] = {}
        for (status,) in rows:
            counts[status] = counts.get(status, 0) + 1
        return counts

    def has_due_trigger(self, layout: SessionLayout, *, now: str) -> bool:
        """Whether a pending, due, triggering row is waiting (what should wake a runner)."""
        with self.engines.get(layout.inbound_db, readonly=True).connect() as conn:
            row = conn.execute(
                select(messages_in.c.id)
                .where(
                    messages_in.c.status == "pending",
                    messages_in.c.trigger == 1,
                    (messages_in.c.process_after.is_(None)) | (messages_in.c.process_after <= now),
                )
                .limit(1)
            ).first()
        return row is not None
