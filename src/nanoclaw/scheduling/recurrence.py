"""Recurring series: re-arm after each run, catch-up after downtime, one pending occurrence.

Rules (DESIGN §4; peers' pains #2–#4, #17):
- When an occurrence ends (``completed`` or ``failed``: a failed run re-arms too), the next
  one is inserted in the same transaction that clears the old row's ``recurrence``, so a
  crash can neither fork the series nor lose it. A series never has more than one
  ``pending``/``paused`` row; the new row's id is derived from the series and its time.
- The next run counts from the scheduled time (``process_after``), not from the moment
  the run ended: no drift. Under catch-up ``once`` (default) an occurrence missed while
  the series was running or the host was down collapses into one run now; under ``skip``
  the series moves on to the next future time.
- An occurrence overdue by more than the grace window when no runner is alive (the host
  was down) is moved to the next future time under ``skip`` and left to fire once under
  ``once``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select, update

from nanoclaw.contract import sessiondb
from nanoclaw.contract.layout import SessionLayout
from nanoclaw.contract.seq import next_host_seq
from nanoclaw.contract.timeutil import parse_iso, to_iso
from nanoclaw.errors import ValidationError
from nanoclaw.scheduling.cron import next_fire
from nanoclaw.sessions.schema import messages_in
from nanoclaw.sessions.store import SessionStore

log = logging.getLogger("nanoclaw.scheduling")

CATCH_UP_POLICIES = ("once", "skip")
DEFAULT_CATCH_UP = "once"
LIVE_STATUSES = ("pending", "paused")


def validate_catch_up(value: str | None, *, field: str = "catch_up") -> str:
    policy = (value or DEFAULT_CATCH_UP).strip().lower()
    if policy not in CATCH_UP_POLICIES:
        raise ValidationError(
            f"unknown catch-up policy {value!r}; use 'once' or 'skip'", field=field
        )
    return policy


def occurrence_id(series_id: str, at: datetime) -> str:
    return f"{series_id}@{at.strftime('%Y%m%dT%H%M%SZ')}"


def next_occurrence(
    expression: str,
    timezone: str,
    *,
    scheduled: datetime,
    now: datetime,
    policy: str,
    grace_s: float,
) -> datetime:
    """When the series runs next, given the time the ending occurrence was scheduled for."""
    if policy == "skip":
        base = max(scheduled, now)
    else:
        # A run that started late already stood in for the times missed before it.
        base = max(scheduled, now - timedelta(seconds=grace_s))
    return next_fire(expression, timezone, base, anchor=scheduled)


@dataclass(frozen=True)
class Rearmed:
    series_id: str
    ended_id: str
    new_id: str | None
    process_after: str | None


def _has_ended_recurring(layout: SessionLayout) -> bool:
    with sessiondb.reading(layout.inbound_db, confined=True) as conn:
        found = conn.execute(
            "SELECT 1 FROM messages_in WHERE status IN ('completed', 'failed')"
            " AND recurrence IS NOT NULL LIMIT 1"
        ).fetchone()
    return found is not None


def rearm_ended(
    store: SessionStore,
    layout: SessionLayout,
    *,
    now: datetime,
    default_tz: str,
    grace_s: float,
) -> list[Rearmed]:
    """Insert the next occurrence of every series whose current occurrence has ended.

    Runs after every turn: a read-only look comes first, so a session without an ended
    recurring row (nearly always) opens no write transaction.
    """
    done: list[Rearmed] = []
    if not _has_ended_recurring(layout):
        return done
    with store.write(layout) as conn:
        ended = conn.execute(
            select(messages_in).where(
                messages_in.c.status.in_(("completed", "failed")),
                messages_in.c.recurrence.is_not(None),
            )
        ).all()
        for row in ended:
            series = row.series_id or row.id
            conn.execute(
                update(messages_in).where(messages_in.c.id == row.id).values(recurrence=None)
            )
            live = conn.execute(
                select(messages_in.c.id)
                .where(
                    messages_in.c.series_id == series,
                    messages_in.c.status.in_(LIVE_STATUSES),
                    messages_in.c.id != row.id,
                )
                .limit(1)
            ).scalar()
            if live is not None:
                done.append(Rearmed(series, row.id, None, None))
                continue
            tz = row.recurrence_tz or default_tz
            try:
                nxt = next_occurrence(
                    row.recurrence,
                    tz,
                    scheduled=parse_iso(row.process_after or row.timestamp),
                    now=now,
                    policy=validate_catch_up(row.catch_up),
                    grace_s=grace_s,
                )
            except (ValidationError, ValueError, KeyError) as exc:
                log.error("series %s ends: cannot compute its next run: %s", series, exc)
                done.append(Rearmed(series, row.id, None, None))
                continue
            new_id = occurrence_id(series, nxt)
            exists = conn.execute(
                select(messages_in.c.id).where(messages_in.c.id == new_id)
            ).scalar()
            if exists is None:
                seq = next_host_seq(conn.execute(select(func.max(messages_in.c.seq))).scalar())
                conn.execute(
                    insert(messages_in).values(
                        id=new_id,
                        seq=seq,
                        kind=row.kind,
                        timestamp=to_iso(now),
                        status="pending",
                        process_after=to_iso(nxt),
                        recurrence=row.recurrence,
                        series_id=series,
                        tries=0,
                        trigger=row.trigger,
                        channel_type=row.channel_type,
                        platform_id=row.platform_id,
                        thread_id=row.thread_id,
                        content=row.content,
                        source_session_id=row.source_session_id,
                        on_wake=0,
                        recurrence_tz=row.recurrence_tz,
                        catch_up=row.catch_up,
                    )
                )
            done.append(Rearmed(series, row.id, new_id, to_iso(nxt)))
    return done


def catch_up_overdue(
    store: SessionStore,
    layout: SessionLayout,
    *,
    now: datetime,
    default_tz: str,
    grace_s: float,
    claimed: set[str],
) -> dict[str, str]:
    """Move overdue ``skip`` occurrences to their next future time; returns id -> new time.

    Call only while no runner is alive for the session (the host was down, or the cap
    held the session back): a running turn may be about to take the row.
    """
    cutoff = to_iso(now - timedelta(seconds=grace_s))
    moved: dict[str, str] = {}
    with store.write(layout) as conn:
        rows = conn.execute(
            select(messages_in).where(
                messages_in.c.status == "pending",
                messages_in.c.recurrence.is_not(None),
                messages_in.c.process_after < cutoff,
            )
        ).all()
        for row in rows:
            if row.id in claimed or validate_catch_up(row.catch_up) != "skip":
                continue
            try:
                nxt = next_fire(
                    row.recurrence,
                    row.recurrence_tz or default_tz,
                    now,
                    anchor=parse_iso(row.process_after),
                )
            except (ValidationError, ValueError, KeyError) as exc:
                log.error("task %s: cannot compute its next run: %s", row.id, exc)
                continue
            conn.execute(
                update(messages_in)
                .where(messages_in.c.id == row.id)
                .values(process_after=to_iso(nxt))
            )
            moved[row.id] = to_iso(nxt)
            log.info(
                "task %s missed its time while the host was down; skipped to %s",
                row.id,
                to_iso(nxt),
            )
    return moved
