"""Every session's folder, opened from a CLI process for commands that read or write its queues."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from nanoclaw.contract.layout import SessionLayout
from nanoclaw.db.central import CentralDB
from nanoclaw.db.repository import Repository
from nanoclaw.sessions.service import SessionService
from nanoclaw.sessions.store import SessionStore


@dataclass(frozen=True)
class SessionFolder:
    id: str
    agent: str
    layout: SessionLayout


@contextmanager
def session_folders() -> Iterator[tuple[SessionStore, list[SessionFolder]]]:
    """The session store and every session (ended ones included), with its agent's name."""
    from nanoclaw.cli.app import settings

    s = settings()
    db = CentralDB(path=s.central_db_path, migrations_root=s.migrations_path)
    try:
        db.migrate()
        repo = Repository(db)
        store = SessionStore(sessions_root=s.sessions_path, migrations_root=s.migrations_path)
        service = SessionService(repo=repo, store=store)
        names = {g.id: g.name for g in repo.agent_groups()}
        found = [
            SessionFolder(
                row.id, names.get(row.agent_group_id, row.agent_group_id), service.layout(row)
            )
            for row in repo.sessions(active_only=False)
        ]
        yield store, found
    finally:
        db.dispose()
