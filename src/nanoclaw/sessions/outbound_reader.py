"""Host reads of a session: ``messages_out``, acks and runner state through fresh read-only
connections; the row types are the session-DB contract's."""

from __future__ import annotations

from sqlalchemy import select

from nanoclaw.contract.layout import SessionLayout
from nanoclaw.contract.sessiondb import (
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

    def acks_since(
        self, layout: SessionLayout, since: str | None
    ) -> tuple[dict[str, str], str | None]:
        """Acks whose ``status_changed`` is at or after ``since`` (all when None), and the
        latest ``status_changed`` among them (``>=``: an ack stamped in the same instant as
        the last one read is read again, never missed)."""
        if not layout.outbound_db.exists():
            return {}, since
        query = select(
            processing_ack.c.message_id, processing_ack.c.status, processing_ack.c.status_changed
        )
        if since is not None:
            query = query.where(processing_ack.c.status_changed >= since)
        with self.engines.get(layout.outbound_db, readonly=True).connect() as conn:
            rows = conn.execute(query).all()
        latest = max((r.status_changed for r in rows), default=since)
        return {r.message_id: r.status for r in rows}, latest

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
