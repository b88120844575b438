"""The central database handle: one WAL engine, migrated at start-up, short transactions."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from nanoclaw.db import migrate
from nanoclaw.db.sqlite import make_engine


class CentralDB:
    def __init__(self, *, path: Path, migrations_root: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.migrations_root = migrations_root
        self.engine = make_engine(path, wal=True)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def migrate(self) -> None:
        migrate.upgrade(self.engine, self.migrations_root, "central")

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One short transaction (BEGIN IMMEDIATE), committed on success."""
        with self._sessions.begin() as session:
            yield session

    @contextmanager
    def plain(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """One short transaction in plain ``sqlite3`` on the same one central connection.

        For the per-message paths, where the ORM's unit of work costs several times the
        statements it runs. ``write=False`` begins a deferred (reading) transaction, which
        takes no write lock. Committed on success, rolled back on any error. Like ``session``
        it holds the one pooled connection: never open one inside the other.
        """
        fairy = self.engine.raw_connection()
        try:
            conn = fairy.driver_connection
            assert isinstance(conn, sqlite3.Connection)
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                # A failed COMMIT too: the one connection never goes back mid-transaction.
                if conn.in_transaction:  # SQLite may have rolled it back already (disk full)
                    conn.execute("ROLLBACK")
                raise
        finally:
            fairy.close()

    def dispose(self) -> None:
        self.engine.dispose()
