"""The central database handle: one WAL engine, migrated at start-up, short transactions."""

from __future__ import annotations

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

    def dispose(self) -> None:
        self.engine.dispose()
