"""The host's hot writes to ``inbound.db`` as SQL on an open transaction: stdlib only.

Both the host (:class:`~nanoclaw.sessions.store.SessionStore`) and the session-DB write worker
(:mod:`nanoclaw.sessions.write_worker`) run these inside ``sessiondb.writing``, so a row is
written the same way whichever process writes it. Host rows carry even seqs, assigned inside
the write transaction (invariant 3).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from nanoclaw.contract.seq import next_host_seq
from nanoclaw.contract.timeutil import now_iso

IN_CHUNK = 500  # ids per IN (...) list, well under SQLite's bound-parameter limit

_INSERT_MESSAGE = (
    "INSERT INTO messages_in (id, seq, kind, timestamp, status, process_after, recurrence,"
    ' series_id, tries, "trigger", channel_type, platform_id, thread_id, content,'
    " source_session_id, on_wake, recurrence_tz, catch_up)"
    " VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True)
class InboundMessage:
    """A row to insert into ``messages_in``; the seq is assigned on write."""

    id: str
    kind: str
    content: dict[str, Any]
    channel_type: str | None = None
    platform_id: str | None = None
    thread_id: str | None = None
    trigger: int = 1
    process_after: str | None = None
    recurrence: str | None = None
    series_id: str | None = None
    source_session_id: str | None = None
    on_wake: int = 0
    recurrence_tz: str | None = None  # IANA zone of ``recurrence`` (NULL = the host's)
    catch_up: str | None = None  # 'once' (NULL) or 'skip'


@dataclass(frozen=True)
class Inserted:
    """What an insert wrote: the rows' seqs, and whether any row given (new or there already)
    is scheduled or recurring (the writer's listeners are told after the commit)."""

    seqs: tuple[int, ...]
    scheduled: bool
    series: bool


def insert_rows(conn: sqlite3.Connection, messages: Sequence[InboundMessage]) -> Inserted:
    """Inside a write transaction: rows with fresh even seqs; a row whose id exists is
    skipped and keeps its seq (idempotent)."""
    seqs: list[int] = []
    scheduled = series = False
    for message in messages:
        # Also for a row that exists: a repeated insert (the write worker died after its
        # commit) tells the listeners what the first one may not have.
        scheduled = scheduled or message.process_after is not None
        series = series or message.recurrence is not None
        existing = conn.execute(
            "SELECT seq FROM messages_in WHERE id = ?", (message.id,)
        ).fetchone()
        if existing is not None:
            seqs.append(int(existing[0]))
            continue
        high = conn.execute("SELECT MAX(seq) FROM messages_in").fetchone()[0]
        seq = next_host_seq(high)
        conn.execute(
            _INSERT_MESSAGE,
            (
                message.id,
                seq,
                message.kind,
                now_iso(),
                message.process_after,
                message.recurrence,
                message.series_id or message.id,
                message.trigger,
                message.channel_type,
                message.platform_id,
                message.thread_id,
                json.dumps(message.content),
                message.source_session_id,
                message.on_wake,
                message.recurrence_tz,
                message.catch_up,
            ),
        )
        seqs.append(seq)
    return Inserted(seqs=tuple(seqs), scheduled=scheduled, series=series)


def record_delivery_row(
    conn: sqlite3.Connection,
    message_out_id: str,
    *,
    status: str,
    platform_message_id: str | None = None,
    attempts: int = 1,
    error: str | None = None,
    next_attempt_at: str | None = None,
    complete: Sequence[str] = (),
) -> None:
    """Inside a write transaction: one delivery attempt; ``complete``: pending rows whose acks
    were read, marked completed in the same transaction. A terminal record is never
    overwritten."""
    complete_rows(conn, complete)
    existing = conn.execute(
        "SELECT status FROM delivered WHERE message_out_id = ?", (message_out_id,)
    ).fetchone()
    if existing is not None and existing[0] in ("delivered", "failed"):
        return
    values = (
        platform_message_id,
        status,
        attempts,
        error,
        next_attempt_at,
        now_iso() if status != "retrying" else None,
        message_out_id,
    )
    if existing is None:
        conn.execute(
            "INSERT INTO delivered (platform_message_id, status, attempts, last_error,"
            " next_attempt_at, delivered_at, message_out_id) VALUES (?,?,?,?,?,?,?)",
            values,
        )
    else:
        conn.execute(
            "UPDATE delivered SET platform_message_id = ?, status = ?, attempts = ?,"
            " last_error = ?, next_attempt_at = ?, delivered_at = ?"
            " WHERE message_out_id = ?",
            values,
        )


def complete_rows(conn: sqlite3.Connection, message_ids: Sequence[str]) -> int:
    """Inside a write transaction: the pending rows among ``message_ids`` become completed."""
    changed = 0
    for chunk in chunks(list(message_ids)):
        changed += conn.execute(
            f"UPDATE messages_in SET status = 'completed' WHERE id IN ({marks(chunk)})"
            " AND status = 'pending'",
            chunk,
        ).rowcount
    return changed


def chunks(ids: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), IN_CHUNK):
        yield list(ids[start : start + IN_CHUNK])


def marks(chunk: Sequence[str]) -> str:
    return ",".join("?" * len(chunk))
