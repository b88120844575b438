"""The sweep's reads and writes of one session's DBs (each one short transaction).

Invariant 1 holds: ``inbound.db`` is written through ``SessionStore.write`` (the host's
writer); ``outbound.db`` is written only by ``release_claims``, which callers invoke only
while no runner is alive for the session. Opening it read-write also rolls back a hot
journal that a killed runner left behind (upstream pain #5).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from nanoclaw.contract import sessiondb
from nanoclaw.contract.confined import ConfinedDir
from nanoclaw.contract.layout import SessionLayout
from nanoclaw.contract.timeutil import to_iso
from nanoclaw.contract.turn_file import MAX_TURN_FILE_BYTES, TURN_FILE, parse_turn
from nanoclaw.errors import SandboxFileError
from nanoclaw.sessions.schema import messages_in, processing_ack
from nanoclaw.sessions.store import SessionStore
from nanoclaw.sweep.stuck import Claim

log = logging.getLogger("nanoclaw.sweep")


@dataclass(frozen=True)
class FailedRow:
    """A message that ran out of tries; both the user and the agent are told."""

    id: str
    kind: str
    channel_type: str | None
    platform_id: str | None
    thread_id: str | None
    content: dict[str, Any]
    tries: int


@dataclass(frozen=True)
class ResetResult:
    retried: dict[str, str]  # id -> new process_after
    failed: list[FailedRow]
    released: int  # claims deleted from outbound.db


def backoff_s(tries: int, base_s: float) -> float:
    """Delay before retry number ``tries`` (1-based): base, 2·base, 4·base, …"""
    return float(base_s * (2 ** max(0, tries - 1)))


def read_claims(store: SessionStore, layout: SessionLayout) -> dict[str, Claim]:
    if not layout.outbound_db.exists():
        return {}
    engine = store.engines.get(layout.outbound_db, readonly=True)
    with engine.connect() as conn:
        rows = conn.execute(select(processing_ack)).all()
    return {r.message_id: Claim(r.status, r.status_changed) for r in rows}


def with_unwritten_claims(layout: SessionLayout, claims: dict[str, Claim]) -> dict[str, Claim]:
    """``claims``, and as ``processing`` claims taken when the file was written, the ids that
    ``outbound/.turn`` names with no ack: a turn whose claim is not written yet
    (nanoclaw.contract.turn_file). A file the host cannot read or parse adds nothing (a warning).
    """
    try:
        with (
            ConfinedDir.open(layout.root, "outbound") as folder,
            folder.open_regular(TURN_FILE, max_bytes=MAX_TURN_FILE_BYTES) as (fd, st),
        ):
            named = parse_turn(os.read(fd, MAX_TURN_FILE_BYTES))
        taken_at = to_iso(datetime.fromtimestamp(st.st_mtime, tz=UTC))
    except FileNotFoundError:
        return claims
    # The runner's own file (its agent can plant anything there): a link, a FIFO, a folder,
    # no permission, garbage, an mtime out of range. It names nothing.
    except (SandboxFileError, OSError, ValueError, OverflowError) as exc:
        log.warning("ignoring %s/outbound/%s: %s", layout.root.name, TURN_FILE, exc)
        return claims
    unwritten = {mid: Claim("processing", taken_at) for mid in named if mid not in claims}
    return {**claims, **unwritten}


def held_by_exited_runner(layout: SessionLayout, claims: dict[str, Claim]) -> list[str]:
    """The rows a runner that exited held: its ``processing`` claims, and those its last turn
    named without writing a claim yet. ``reset_stuck_rows`` counts a try for those still pending.
    """
    held = with_unwritten_claims(layout, claims)
    return [mid for mid, c in held.items() if c.status == "processing"]


def reset_stuck_rows(
    store: SessionStore,
    layout: SessionLayout,
    claim_ids: list[str],
    *,
    now: datetime,
    backoff_base_s: float,
    max_tries: int,
) -> ResetResult:
    """Count one failed try for each claimed row still pending: retry later, or fail it.

    A row whose ``process_after`` is already in the future was reset before and is skipped.
    The caller must make sure no runner is alive; this also deletes the stale claims.
    """
    now_text = to_iso(now)
    retried: dict[str, str] = {}
    failed: list[FailedRow] = []
    if claim_ids:
        with store.write(layout) as conn:
            rows = conn.execute(
                select(messages_in).where(
                    messages_in.c.id.in_(claim_ids), messages_in.c.status == "pending"
                )
            ).all()
            for row in rows:
                if row.process_after and row.process_after > now_text:
                    continue
                tries = int(row.tries) + 1
                if tries >= max_tries:
                    conn.execute(
                        update(messages_in)
                        .where(messages_in.c.id == row.id)
                        .values(status="failed", tries=tries)
                    )
                    failed.append(
                        FailedRow(
                            id=row.id,
                            kind=row.kind,
                            channel_type=row.channel_type,
                            platform_id=row.platform_id,
                            thread_id=row.thread_id,
                            content=_content(row.content),
                            tries=tries,
                        )
                    )
                    continue
                after = to_iso(now + timedelta(seconds=backoff_s(tries, backoff_base_s)))
                conn.execute(
                    update(messages_in)
                    .where(messages_in.c.id == row.id)
                    .values(tries=tries, process_after=after)
                )
                retried[row.id] = after
    released = release_claims(store, layout)
    return ResetResult(retried=retried, failed=failed, released=released)


def release_claims(store: SessionStore, layout: SessionLayout) -> int:
    """Delete ``processing`` claims (and roll back a hot journal). Only with no runner alive."""
    return store.clear_orphan_claims(layout)


def recover_journals(store: SessionStore, layout: SessionLayout) -> bool:
    """Roll back hot journals left by a kill with a read-write open; True if one was found."""
    found = False
    inbound_journal = layout.inbound_db.with_name(layout.inbound_db.name + "-journal")
    if inbound_journal.exists():
        found = True
        with store.write(layout) as conn:
            conn.execute(select(func.count()).select_from(messages_in))
    outbound_journal = layout.outbound_db.with_name(layout.outbound_db.name + "-journal")
    if outbound_journal.exists():
        found = True
        with store.engines.get(layout.outbound_db).begin() as conn:
            conn.execute(select(func.count()).select_from(processing_ack))
    return found


def next_due(store: SessionStore, layout: SessionLayout, *, after: str) -> str | None:
    """The earliest ``process_after`` later than ``after`` of a pending, triggering row."""
    # Plain sqlite3 on the contract's probed open: the due timer asks after every insert.
    with sessiondb.reading(layout.inbound_db, confined=True) as conn:
        value = conn.execute(
            "SELECT MIN(process_after) FROM messages_in WHERE status = 'pending'"
            ' AND "trigger" = 1 AND process_after > ?',
            (after,),
        ).fetchone()[0]
    return str(value) if value is not None else None


def nudge(store: SessionStore, layout: SessionLayout, message_id: str | None = None) -> None:
    """Bump inbound.db's change counter without changing any value, so a live runner polls now."""
    with store.write(layout) as conn:
        target = message_id or conn.execute(select(func.max(messages_in.c.id))).scalar()
        if target is None:
            return
        for delta in (1, -1):
            conn.execute(
                update(messages_in)
                .where(messages_in.c.id == target)
                .values(tries=messages_in.c.tries + delta)
            )


def _content(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {"text": raw}
    return value if isinstance(value, dict) else {"text": str(value)}
