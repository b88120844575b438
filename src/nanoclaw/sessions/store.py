"""Session folders: creation, migration, and the host's writes to ``inbound.db``.

Invariants owned here:
1. One writer per file: the host writes ``inbound.db``; it writes ``outbound.db`` only to
   create or migrate it, and to clear orphan claims, while no runner is alive.
2. ``journal_mode=DELETE``; every host write opens, ``BEGIN IMMEDIATE``, commits and closes
   (NullPool). Host writes to one session are serialised by a per-session lock.
3. Host rows carry even seq, assigned inside the write transaction.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import Connection, delete

from nanoclaw.contract import sessiondb
from nanoclaw.contract.confined import ConfinedDir
from nanoclaw.contract.layout import SUBDIRS, SessionLayout
from nanoclaw.contract.sessiondb import SessionFile
from nanoclaw.contract.turn_file import TURN_FILE
from nanoclaw.db.sqlite import EngineCache
from nanoclaw.sessions.inbound_rows import InboundMessage as InboundMessage  # re-exported
from nanoclaw.sessions.inbound_rows import (
    Inserted,
    chunks,
    complete_rows,
    insert_rows,
    marks,
    record_delivery_row,
)
from nanoclaw.sessions.paths import safe_name
from nanoclaw.sessions.schema import processing_ack


class DestinationRow(NamedTuple):
    """One ``destinations`` row, its fields in column order (written as it is)."""

    name: str
    display_name: str | None
    type: str
    channel_type: str | None
    platform_id: str | None
    agent_group_id: str | None


@dataclass(frozen=True)
class RoutingRow:
    channel_type: str | None
    platform_id: str | None
    thread_id: str | None


class SessionStore:
    """Owns the session folders under ``sessions_root`` and every host write to them."""

    def __init__(self, *, sessions_root: Path, engines: EngineCache | None = None) -> None:
        self.sessions_root = sessions_root
        self.engines = engines or EngineCache()
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._listeners: list[Callable[[SessionLayout], None]] = []
        self._series_listeners: list[Callable[[SessionLayout], None]] = []

    def add_insert_listener(self, listener: Callable[[SessionLayout], None]) -> None:
        """Called (from the writing thread) after rows with a ``process_after`` are inserted
        into a session's inbound.db (a row without one is due now: the route wakes its runner).

        The due-work timer uses it to learn about rows with a future ``process_after``.
        """
        self._listeners.append(listener)

    def add_series_listener(self, listener: Callable[[SessionLayout], None]) -> None:
        """Called (from the writing thread) after a write that may have given a row a
        ``recurrence``: :meth:`insert_messages` of such a row, or any :meth:`write`
        transaction (task updates, re-arming, the sweep's repairs: rare, so not inspected)."""
        self._series_listeners.append(listener)

    def _notify(
        self, layout: SessionLayout, listeners: list[Callable[[SessionLayout], None]] | None = None
    ) -> None:
        for listener in self._listeners if listeners is None else listeners:
            try:
                listener(layout)
            except Exception:  # a listener never fails a write that has committed
                logging.getLogger("nanoclaw.sessions").exception("insert listener failed")

    # -- folders ------------------------------------------------------------------------------
    def layout(self, agent_folder: str, session_id: str) -> SessionLayout:
        return SessionLayout(self.sessions_root / safe_name(agent_folder) / safe_name(session_id))

    def ensure(self, agent_folder: str, session_id: str) -> SessionLayout:
        """Create the folder and ``inbound.db`` at its schema head (idempotent; one commit)."""
        layout = self.layout(agent_folder, session_id)
        for sub in SUBDIRS:
            layout.dir(sub).mkdir(parents=True, exist_ok=True)
        with self._lock(layout):
            sessiondb.migrate(layout.inbound_db, SessionFile.INBOUND, confined=True)
        return layout

    def prepare_outbound(self, layout: SessionLayout) -> None:
        """Create or migrate ``outbound.db``. Only while no runner is alive (invariant 1)."""
        sessiondb.migrate(layout.outbound_db, SessionFile.OUTBOUND, confined=True)

    def heads(self) -> tuple[int, int]:
        """The schema versions of (inbound.db, outbound.db) this code writes."""
        return (
            sessiondb.head_version(SessionFile.INBOUND),
            sessiondb.head_version(SessionFile.OUTBOUND),
        )

    # -- writes to inbound.db -------------------------------------------------------------------
    def _lock(self, layout: SessionLayout) -> threading.Lock:
        key = str(layout.root)
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    @contextmanager
    def write(self, layout: SessionLayout) -> Iterator[Connection]:
        """One host write transaction on ``inbound.db``: open, BEGIN IMMEDIATE, commit, close."""
        with self._lock(layout), self.engines.get(layout.inbound_db).begin() as conn:
            yield conn
        self._notify(layout, self._series_listeners)

    @contextmanager
    def _writing(self, layout: SessionLayout) -> Iterator[sqlite3.Connection]:
        """:meth:`write` on a plain ``sqlite3`` connection (the hot paths: no statement compile)."""
        with self._lock(layout), sessiondb.writing(layout.inbound_db, confined=True) as conn:
            yield conn

    def insert_messages(
        self, layout: SessionLayout, messages: Sequence[InboundMessage]
    ) -> list[int]:
        """Insert rows with fresh even seqs; a row whose id exists is skipped (idempotent)."""
        with self._writing(layout) as conn:
            inserted = insert_rows(conn, messages)
        self.notify_inserted(layout, inserted)
        return list(inserted.seqs)

    def notify_inserted(self, layout: SessionLayout, inserted: Inserted) -> None:
        """Tell the listeners about committed rows (also for rows the write worker wrote)."""
        if inserted.series:
            self._notify(layout, self._series_listeners)
        if inserted.scheduled:
            self._notify(layout)

    def project(
        self,
        layout: SessionLayout,
        *,
        dests: Sequence[DestinationRow],
        routing: RoutingRow | None,
    ) -> None:
        """Replace ``destinations`` and ``session_routing`` in one transaction."""
        with self._lock(layout), sessiondb.writing(layout.inbound_db, confined=True) as conn:
            _write_projection(conn, dests, routing)

    def sync_acks(
        self,
        layout: SessionLayout,
        acks: dict[str, str],
        *,
        inbound: sqlite3.Connection | None = None,
    ) -> int:
        """Mark pending rows completed when the runner acked them completed or failed.

        Writes only on change: a read finds which of them are still pending first (on
        ``inbound``, a read-only connection the caller holds, if given), so a pass with nothing
        new opens no write transaction.
        """
        done = [mid for mid, status in acks.items() if status in ("completed", "failed")]
        still_pending = self.pending_among(layout, done, inbound=inbound)
        if not still_pending:
            return 0
        with self._writing(layout) as conn:
            return complete_rows(conn, still_pending)

    def pending_among(
        self,
        layout: SessionLayout,
        message_ids: Sequence[str],
        *,
        inbound: sqlite3.Connection | None = None,
    ) -> list[str]:
        """Those of ``message_ids`` that ``messages_in`` has pending (read-only)."""
        if not message_ids:
            return []
        with sessiondb.reading_with(layout.inbound_db, inbound, confined=True) as conn:
            return [
                r[0]
                for chunk in chunks(message_ids)
                for r in conn.execute(
                    f"SELECT id FROM messages_in WHERE id IN ({marks(chunk)})"
                    " AND status = 'pending'",
                    chunk,
                )
            ]

    def complete(self, layout: SessionLayout, message_ids: Sequence[str]) -> int:
        """Mark these pending rows completed (their finished acks were read: see
        :meth:`sync_acks`)."""
        if not message_ids:
            return 0
        with self._writing(layout) as conn:
            return complete_rows(conn, message_ids)

    def record_delivery(
        self,
        layout: SessionLayout,
        message_out_id: str,
        *,
        status: str,
        platform_message_id: str | None = None,
        attempts: int = 1,
        error: str | None = None,
        next_attempt_at: str | None = None,
        complete: Sequence[str] = (),
    ) -> None:
        """Record one delivery attempt; ``complete``: pending rows whose acks were read, marked
        completed in the same transaction (the delivery pass folds its acks in this way)."""
        with self._writing(layout) as conn:
            record_delivery_row(
                conn,
                message_out_id,
                status=status,
                platform_message_id=platform_message_id,
                attempts=attempts,
                error=error,
                next_attempt_at=next_attempt_at,
                complete=complete,
            )

    def clear_orphan_claims(self, layout: SessionLayout) -> int:
        """Delete ``processing`` claims left by a dead runner, and the rows its last turn named
        (``outbound/.turn``, nanoclaw.contract.turn_file). Only while no runner is alive."""
        try:
            with ConfinedDir.open(layout.root, "outbound") as outbound:  # never through a link
                outbound.remove_tree(TURN_FILE)  # an agent may have planted a folder there
        except FileNotFoundError:
            pass
        if not layout.outbound_db.exists():
            return 0
        # A read-write open also rolls back a hot journal a killed runner left behind.
        with self.engines.get(layout.outbound_db).begin() as conn:
            result = conn.execute(
                delete(processing_ack).where(processing_ack.c.status == "processing")
            )
            return int(result.rowcount)

    def forget(self, layout: SessionLayout) -> None:
        """The session is gone: its write lock and cached engines are dropped."""
        with self._locks_guard:
            self._locks.pop(str(layout.root), None)
        self.engines.forget(layout.inbound_db)
        self.engines.forget(layout.outbound_db)


def _write_projection(
    conn: sqlite3.Connection, dests: Sequence[DestinationRow], routing: RoutingRow | None
) -> None:
    """Replace ``destinations`` and ``session_routing`` inside the caller's transaction."""
    conn.execute("DELETE FROM destinations")
    conn.executemany(
        "INSERT INTO destinations (name, display_name, type, channel_type, platform_id,"
        " agent_group_id) VALUES (?, ?, ?, ?, ?, ?)",
        dests,
    )
    conn.execute("DELETE FROM session_routing")
    if routing is not None:
        conn.execute(
            "INSERT INTO session_routing (id, channel_type, platform_id, thread_id)"
            " VALUES (1, ?, ?, ?)",
            (routing.channel_type, routing.platform_id, routing.thread_id),
        )
