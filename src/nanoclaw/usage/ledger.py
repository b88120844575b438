"""The usage ledger: each runner writes one ``usage`` row per turn into its ``outbound.db``; the
host copies new rows into the central ``usage_turns`` table (idempotent: one row per
session and runner row id) and sums them per agent group, session, model and day.

Days are calendar days in the host's time zone (invariant 9: stored instants are UTC; the
zone applies at the edge, where "today's spending" is asked).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from nanoclaw.contract import sessiondb
from nanoclaw.contract.sessiondb import UsageRow
from nanoclaw.contract.timeutil import parse_iso, to_iso, utc_now
from nanoclaw.db.models import SessionRow, UsageTurn
from nanoclaw.db.repository import Repository
from nanoclaw.errors import SandboxFileError
from nanoclaw.sessions.service import SessionService
from nanoclaw.settings import Settings

log = logging.getLogger("nanoclaw.usage")

GroupBy = Literal["group", "session", "day", "model"]
MAX_OFFERED_ROWS = 1000  # per session: more (a host that never ingests) and ingest reads itself

# One runner usage row; a row already copied (same session and runner row id) is left alone.
_INSERT_TURN = (
    "INSERT INTO usage_turns (session_id, agent_group_id, runner_row_id, day, model,"
    " input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, occurred_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (session_id, runner_row_id) DO NOTHING"
)


@dataclass(frozen=True)
class UsageTotal:
    key: str
    turns: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float


def _read_usage(path: Path, *, after_id: int) -> list[UsageRow]:
    """A fresh, probed read-only read through the session-DB contract (invariants 2 and 6)."""
    try:
        with sessiondb.reading(path, confined=True) as conn:
            return sessiondb.read_usage(conn, after_id=after_id)
    except (sqlite3.Error, OSError, SandboxFileError) as exc:  # busy, or a file the sandbox spoilt
        log.debug("usage of %s not readable now: %s", path, exc)
        return []


class UsageLedger:
    def __init__(self, *, settings: Settings, repo: Repository, sessions: SessionService) -> None:
        self.settings = settings
        self.repo = repo
        self.sessions = sessions
        self.zone = ZoneInfo(settings.timezone)
        # Session id → the highest runner usage row id copied. Only this ledger writes
        # ``usage_turns`` (the central DB is the host's own), so it is read from there once.
        self._ingested: dict[str, int] = {}
        # Session id → usage rows read at a turn's end by the delivery pass (its lane), not
        # yet copied; :meth:`ingest` takes them instead of opening ``outbound.db`` itself.
        self._offered: dict[str, list[UsageRow]] = {}
        self._offered_lock = threading.Lock()

    def day_of(self, moment: datetime) -> str:
        return moment.astimezone(self.zone).date().isoformat()

    def today(self) -> str:
        return self.day_of(utc_now())

    # -- ingest ------------------------------------------------------------------------------
    def read_at_turn_end(self, session_id: str, outbound: sqlite3.Connection) -> None:
        """``DeliveryLoop.on_turn_end_read``: the session's new usage rows, read on the pass's
        connection and kept for :meth:`ingest` (nothing is kept before the first ingest has
        read the session's watermark, nor beyond :data:`MAX_OFFERED_ROWS`)."""
        last = self._ingested.get(session_id)
        if last is None:
            return
        try:
            rows = sessiondb.read_usage(outbound, after_id=last)
        except sqlite3.Error as exc:  # busy, or a file the sandbox spoilt: ingest reads itself
            log.debug("usage of %s not readable in the pass: %s", session_id, exc)
            return
        if not rows:
            return
        with self._offered_lock:
            kept = self._offered.setdefault(session_id, [])
            seen = {r.id for r in kept}
            kept.extend(r for r in rows if r.id not in seen)
            if len(kept) > MAX_OFFERED_ROWS:
                del self._offered[session_id]

    def _take_offered(self, session_id: str, after_id: int) -> list[UsageRow] | None:
        with self._offered_lock:
            offered = self._offered.pop(session_id, None)
        if offered is None:
            return None
        return sorted((r for r in offered if r.id > after_id), key=lambda r: r.id)

    def ingest(self, session: SessionRow) -> int:
        """Copy the session's usage rows not yet in the central DB; returns how many were new."""
        last = self._ingested.get(session.id)
        rows = None if last is None else self._take_offered(session.id, last)
        if rows is None:
            layout = self.sessions.layout(session)
            if not layout.outbound_db.exists():
                return 0
            if last is None:
                with self.repo.db.plain(write=False) as conn:
                    (known,) = conn.execute(
                        "SELECT max(runner_row_id) FROM usage_turns WHERE session_id = ?",
                        (session.id,),
                    ).fetchone()
                last = int(known or 0)
                self._ingested[session.id] = last
            rows = _read_usage(layout.outbound_db, after_id=last)
        if not rows:
            return 0
        values = []
        for r in rows:
            occurred = parse_iso(r.created_at)
            values.append(
                (
                    session.id,
                    session.agent_group_id,
                    r.id,
                    self.day_of(occurred),
                    r.model,
                    r.input_tokens,
                    r.output_tokens,
                    r.cache_read_tokens,
                    r.cache_write_tokens,
                    r.cost_usd,
                    to_iso(occurred),
                )
            )
        with self.repo.db.plain() as conn:
            conn.executemany(_INSERT_TURN, values)
        self._ingested[session.id] = max(last or 0, rows[-1].id)
        return len(values)

    def ingest_all(self) -> int:
        total = 0
        for session in self.repo.sessions(active_only=False):
            try:
                total += self.ingest(session)
            except Exception:
                log.exception("usage of session %s could not be read", session.id)
        return total

    # -- queries -----------------------------------------------------------------------------
    def spent(self, agent_group_id: str, day: str | None = None) -> float:
        with self.repo.db.plain(write=False) as conn:
            (total,) = conn.execute(
                "SELECT coalesce(sum(cost_usd), 0.0) FROM usage_turns"
                " WHERE agent_group_id = ? AND day = ?",
                (agent_group_id, day or self.today()),
            ).fetchone()
        return float(total or 0.0)

    def totals(
        self,
        *,
        by: GroupBy = "group",
        since: date | None = None,
        agent_group_ids: Sequence[str] | None = None,
    ) -> list[UsageTotal]:
        column = {
            "group": UsageTurn.agent_group_id,
            "session": UsageTurn.session_id,
            "day": UsageTurn.day,
            "model": UsageTurn.model,
        }[by]
        query = select(
            column,
            func.count(UsageTurn.id),
            func.sum(UsageTurn.input_tokens),
            func.sum(UsageTurn.output_tokens),
            func.sum(UsageTurn.cache_read_tokens),
            func.sum(UsageTurn.cache_write_tokens),
            func.sum(UsageTurn.cost_usd),
        ).group_by(column)
        if since is not None:
            query = query.where(UsageTurn.day >= since.isoformat())
        if agent_group_ids is not None:
            query = query.where(UsageTurn.agent_group_id.in_(list(agent_group_ids)))
        with self.repo.db.session() as s:
            rows = s.execute(query.order_by(column)).all()
        return [
            UsageTotal(
                key=str(r[0]),
                turns=int(r[1]),
                input_tokens=int(r[2] or 0),
                output_tokens=int(r[3] or 0),
                cache_read_tokens=int(r[4] or 0),
                cache_write_tokens=int(r[5] or 0),
                cost_usd=round(float(r[6] or 0.0), 6),
            )
            for r in rows
        ]
