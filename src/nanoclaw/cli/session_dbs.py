"""Every session's folder, opened from a CLI process for commands that read or write its queues."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from rich.console import Console

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
    from nanoclaw.cli.context import settings

    s = settings()
    db = CentralDB(path=s.central_db_path, migrations_root=s.migrations_path)
    try:
        db.migrate()
        repo = Repository(db)
        store = SessionStore(sessions_root=s.sessions_path)
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


class _Row(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


def rows_of_every_session(
    read: Callable[[SessionStore, SessionLayout], Sequence[_Row]], *, err: Console
) -> list[dict[str, Any]]:
    """``read`` on every session, each row tagged with its session and agent; a session that
    cannot be read is reported and skipped, so one damaged DB never hides the others."""
    rows: list[dict[str, Any]] = []
    with session_folders() as (store, sessions):
        for session in sessions:
            try:
                found = read(store, session.layout)
            except Exception as exc:
                err.print(f"[yellow]warning:[/] session {session.id} unreadable: {exc}")
                continue
            rows += [
                {**r.to_dict(), "session_id": session.id, "agent": session.agent} for r in found
            ]
    return rows
