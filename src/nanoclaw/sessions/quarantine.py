"""Session quarantine: a session whose sandbox left an unsafe file is shut off, and only that session.

Invariant 6 and 8. When a confined open refuses a session's file (its ``outbound.db`` or
``-journal`` is a FIFO, a symlink, a device, oversized, or changed while it was opened), the
host records the session in ``quarantined_sessions``, logs one line with the cause, stops its
runner, and ends each of its pending messages ``failed`` with a notice to the chat it came
from. From then on the delivery loop, the sweep and the supervisor leave the session alone
(no open of its files, no runner); a message routed to it later also ends ``failed`` with a
notice. ``nanoclaw status`` lists quarantined sessions and their cause.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import select, update

from nanoclaw.db.central import CentralDB
from nanoclaw.db.models import QuarantinedSession
from nanoclaw.db.repository import Repository
from nanoclaw.delivery.notices import Notifier
from nanoclaw.errors import NotFoundError, SandboxFileError
from nanoclaw.executors import Executors
from nanoclaw.sessions.schema import messages_in
from nanoclaw.sessions.service import SessionService

log = logging.getLogger("nanoclaw.sessions.quarantine")

NOTICE_TEXT = (
    "Your message could not be handled: this conversation's agent was stopped because its "
    "sandbox left an unsafe file ({problem}). The operator can see it with `nanoclaw status`."
)


@dataclass(frozen=True)
class QuarantineEntry:
    session_id: str
    problem: str
    cause: str
    quarantined_at: str


def list_quarantined(db: CentralDB) -> list[QuarantineEntry]:
    """Every quarantined session, oldest first (``nanoclaw status`` shows them)."""
    with db.session() as s:
        rows = s.scalars(select(QuarantinedSession).order_by(QuarantinedSession.quarantined_at))
        return [
            QuarantineEntry(
                session_id=r.session_id,
                problem=r.problem,
                cause=r.cause,
                quarantined_at=r.quarantined_at.isoformat(),
            )
            for r in rows
        ]


@dataclass(frozen=True)
class _FailedRow:
    id: str
    channel_type: str | None
    platform_id: str | None
    thread_id: str | None


class SessionQuarantine:
    """Which sessions are quarantined, and the one way a session gets there."""

    def __init__(
        self,
        *,
        executors: Executors,
        db: CentralDB,
        repo: Repository,
        sessions: SessionService,
        notices: Notifier,
        stop_runner: Callable[[str], Awaitable[None]] | None = None,
        report_failed: Callable[[str, set[str]], Awaitable[None]] | None = None,
    ) -> None:
        self.executors = executors
        self.db = db
        self.repo = repo
        self.sessions = sessions
        self.notices = notices
        self.stop_runner = stop_runner
        # Typing indicators, waiting CLI clients: these turns are over, and they ended failed.
        self.report_failed = report_failed
        self._known: set[str] | None = None
        self._lock = asyncio.Lock()

    def load(self) -> None:
        """Read the quarantined sessions (blocking; the host calls it off the loop at start)."""
        self._known = {e.session_id for e in self.entries()}

    def is_quarantined(self, session_id: str) -> bool:
        if self._known is None:
            self.load()
        assert self._known is not None
        return session_id in self._known

    def entries(self) -> list[QuarantineEntry]:
        return list_quarantined(self.db)

    async def quarantine(self, session_id: str, error: SandboxFileError) -> int:
        """Quarantine the session (once) and fail its pending messages; returns how many failed."""
        async with self._lock:
            first = await self.executors.central.run(self._record, session_id, error)
            if first:
                log.error("session %s quarantined: %s", session_id, error)
                if self.stop_runner is not None:
                    try:
                        await self.stop_runner(session_id)
                    except Exception as exc:  # the record stands; the runner is reaped later
                        log.warning(
                            "quarantined session %s: runner stop failed: %s", session_id, exc
                        )
            return await self.fail_pending(session_id, error.problem.value)

    async def fail_pending(self, session_id: str, problem: str | None = None) -> int:
        """End the session's pending messages ``failed`` and tell each chat once."""
        if problem is None:
            entry = next((e for e in self.entries() if e.session_id == session_id), None)
            problem = entry.problem if entry else "unsafe file"
        try:
            failed = await self.executors.central.run(self._fail_rows, session_id)
        except NotFoundError:
            return 0
        told: set[tuple[str, str, str | None]] = set()
        for row in failed:
            if not row.channel_type or not row.platform_id or row.channel_type == "agent":
                continue
            key = (row.channel_type, row.platform_id, row.thread_id)
            if key in told:
                continue
            told.add(key)
            await self.notices.notify(
                row.channel_type,
                row.platform_id,
                row.thread_id,
                NOTICE_TEXT.format(problem=problem),
            )
        if failed and self.report_failed is not None:
            await self.report_failed(session_id, {row.id for row in failed})
        return len(failed)

    def _record(self, session_id: str, error: SandboxFileError) -> bool:
        if self.is_quarantined(session_id):
            return False
        with self.db.session() as s:
            if s.get(QuarantinedSession, session_id) is None:
                s.add(
                    QuarantinedSession(
                        session_id=session_id, problem=error.problem.value, cause=str(error)
                    )
                )
        assert self._known is not None
        self._known.add(session_id)
        return True

    def _fail_rows(self, session_id: str) -> list[_FailedRow]:
        # inbound.db is host-written and never sandbox-writable; it is still opened confined.
        session = self.repo.session(session_id)
        layout = self.sessions.layout(session)
        store = self.sessions.store
        try:
            with store.write(layout) as conn:
                rows = conn.execute(
                    select(
                        messages_in.c.id,
                        messages_in.c.channel_type,
                        messages_in.c.platform_id,
                        messages_in.c.thread_id,
                    ).where(messages_in.c.status == "pending")
                ).all()
                if rows:
                    conn.execute(
                        update(messages_in)
                        .where(messages_in.c.id.in_([r.id for r in rows]))
                        .values(status="failed")
                    )
        except (FileNotFoundError, SandboxFileError) as exc:
            log.warning(
                "quarantined session %s: its inbound.db cannot be opened: %s", session_id, exc
            )
            return []
        return [_FailedRow(r.id, r.channel_type, r.platform_id, r.thread_id) for r in rows]
