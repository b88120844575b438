"""SQLite engines with explicit transactions (Python 3.11's sqlite3 is in legacy transaction mode).

Invariant 2: session DBs use ``journal_mode=DELETE`` and NullPool (open, write, close per
operation) with ``BEGIN IMMEDIATE``; read-only engines use ``mode=ro`` and ``mmap_size=0``.
The central DB, never mounted into a sandbox, uses WAL. Session DB engines take every connection
from ``contract.sessiondb.connect(confined=True)``: the contract's rules, probed through the
folder's descriptor, never resolved by name (invariant 6).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import NullPool, QueuePool

from nanoclaw.contract import sessiondb

BUSY_TIMEOUT_MS = 5000
# A central transaction waits this long for the one central connection (a nested one never gets it).
CENTRAL_POOL_TIMEOUT_S = 30.0


def make_engine(path: Path, *, readonly: bool = False, wal: bool = False) -> Engine:
    """An engine on a host-only SQLite file (the central DB: ``wal=True``).

    Every transaction starts with ``BEGIN`` (read-only) or ``BEGIN IMMEDIATE``.
    """
    url = f"sqlite:///file:{path}?mode=ro&uri=true" if readonly else f"sqlite:///{path}"
    connect_args = {"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
    if wal:
        # The central DB: one connection, kept open and used by one thread at a time (in the
        # host, the central executor's thread: see ``nanoclaw.executors``).
        engine = create_engine(
            url,
            poolclass=QueuePool,
            pool_size=1,
            max_overflow=0,
            pool_timeout=CENTRAL_POOL_TIMEOUT_S,
            # Every user ends its own transaction (ORM sessions by commit or rollback,
            # ``CentralDB.plain`` likewise), so the pool's reset ROLLBACK on each return is
            # work with nothing to undo.
            pool_reset_on_return=None,
            connect_args=connect_args,
        )
    else:
        engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_conn.cursor()
        if not readonly:
            cursor.execute(f"PRAGMA journal_mode={'WAL' if wal else 'DELETE'}")
            if wal:
                cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA mmap_size=0")
        cursor.close()

    _begin_explicitly(engine, readonly=readonly)
    return engine


def session_engine(path: Path, *, readonly: bool) -> Engine:
    """An engine on a session DB: each connection comes from the session-DB contract's probed
    host-side open (its pragmas, ``isolation_level=None``; NullPool: open, use, close)."""
    engine = create_engine(
        "sqlite://",
        poolclass=NullPool,
        creator=lambda: sessiondb.connect(path, readonly=readonly, confined=True),
    )
    _begin_explicitly(engine, readonly=readonly)
    return engine


def _begin_explicitly(engine: Engine, *, readonly: bool) -> None:
    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


class EngineCache:
    """Reusable NullPool engines keyed by (path, readonly).

    A NullPool engine opens a new SQLite connection for every use and closes it after, so
    reusing the engine object keeps the open-write-close rule while saving the cost of
    building an engine per operation. Least recently used engines are disposed past ``size``.
    """

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._engines: dict[tuple[Path, bool], Engine] = {}
        self._lock = threading.Lock()

    def get(self, path: Path, *, readonly: bool = False) -> Engine:
        key = (path, readonly)
        with self._lock:
            engine = self._engines.pop(key, None)
            if engine is None:
                engine = session_engine(path, readonly=readonly)
            self._engines[key] = engine
            while len(self._engines) > self.size:
                self._engines.pop(next(iter(self._engines))).dispose()
            return engine

    def forget(self, path: Path) -> None:
        with self._lock:
            for key in [k for k in self._engines if k[0] == path]:
                self._engines.pop(key).dispose()
