"""Host reads of a session: ``messages_out``, acks and runner state through fresh read-only
connections; the row types are the session-DB contract's."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from sqlalchemy import func, select

from nanoclaw.contract import sessiondb
from nanoclaw.contract.layout import SessionLayout
from nanoclaw.contract.sessiondb import (
    OUTBOUND_ROW_COLUMNS,
    AckRow,
    DeliveryState,
    OutboundRow,
    RunnerState,
    outbound_row,
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

_IN_CHUNK = 500  # ids per IN (...) list, well under SQLite's bound-parameter limit


class SessionReader:
    """Read-only views of both session DBs; a call opens and closes its own connection unless it
    is handed one a pass holds open (fresh per pass, DESIGN §2.2)."""

    def __init__(self, *, engines: EngineCache) -> None:
        self.engines = engines

    def outbound_rows(
        self,
        layout: SessionLayout,
        *,
        after_seq: int = 0,
        also_seqs: Sequence[int] = (),
        outbound: sqlite3.Connection | None = None,
    ) -> list[OutboundRow]:
        """Rows above ``after_seq``, and those of ``also_seqs`` (at most a few hundred), in seq
        order, due or not (``outbound``: an open connection to use). A row whose
        ``deliver_after`` has not come is the caller's to wait for: the delivery floor must not
        pass it."""
        if outbound is None and not layout.outbound_db.exists():
            return []
        query = f"SELECT {OUTBOUND_ROW_COLUMNS} FROM messages_out WHERE seq > ?"
        params: tuple[int, ...] = (after_seq,)
        if also_seqs:
            # Two index searches merged in order; an OR would scan the whole seq index.
            marks = ",".join("?" * len(also_seqs))
            query = (
                f"SELECT {OUTBOUND_ROW_COLUMNS} FROM messages_out"
                f" WHERE seq IN ({marks}) AND seq <= ? UNION ALL {query}"
            )
            params = (*also_seqs, after_seq, after_seq)
        # Plain sqlite3 on the contract's probed read-only open: the hottest reads of a drain.
        with sessiondb.reading_with(layout.outbound_db, outbound, confined=True) as conn:
            rows = conn.execute(f"{query} ORDER BY seq", params).fetchall()
        return [outbound_row(r) for r in rows]

    def acks(self, layout: SessionLayout) -> dict[str, str]:
        if not layout.outbound_db.exists():
            return {}
        with self.engines.get(layout.outbound_db, readonly=True).connect() as conn:
            rows = conn.execute(select(processing_ack.c.message_id, processing_ack.c.status)).all()
        return {r.message_id: r.status for r in rows}

    def acks_since(
        self,
        layout: SessionLayout,
        since: str | None,
        *,
        outbound: sqlite3.Connection | None = None,
    ) -> list[AckRow]:
        """``processing_ack`` rows changed at or after ``since`` (every row when None;
        ``outbound``: an open connection to use)."""
        if outbound is None and not layout.outbound_db.exists():
            return []
        query = "SELECT message_id, status, status_changed FROM processing_ack"
        params: tuple[str, ...] = ()
        if since is not None:
            query += " WHERE status_changed >= ?"
            params = (since,)
        with sessiondb.reading_with(layout.outbound_db, outbound, confined=True) as conn:
            rows = conn.execute(query, params).fetchall()
        return [AckRow(*r) for r in rows]

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
        self,
        layout: SessionLayout,
        ids: list[str] | None = None,
        *,
        inbound: sqlite3.Connection | None = None,
    ) -> dict[str, DeliveryState]:
        """Delivery records (of ``ids``, or all); ``inbound``: an open connection to use."""
        query = (
            "SELECT message_out_id, status, attempts, next_attempt_at, platform_message_id"
            " FROM delivered"
        )
        with sessiondb.reading_with(layout.inbound_db, inbound, confined=True) as conn:
            if ids is None:
                rows = conn.execute(query).fetchall()
            else:
                rows = []
                for start in range(0, len(ids), _IN_CHUNK):
                    chunk = ids[start : start + _IN_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    rows += conn.execute(
                        f"{query} WHERE message_out_id IN ({marks})", chunk
                    ).fetchall()
        return {
            r[0]: DeliveryState(
                status=r[1], attempts=r[2], next_attempt_at=r[3], platform_message_id=r[4]
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
