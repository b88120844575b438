"""Sessions' last_active: marks made while a write is scheduled join it; stopping writes the rest."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from nanoclaw.db.central import CentralDB
from nanoclaw.db.models import SessionRow
from nanoclaw.db.repository import Repository
from nanoclaw.sessions.activity import SessionActivity
from tests.conftest import REPO_ROOT
from tests.helpers import make_agent, shared_executors

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class RecordingRepository(Repository):
    """The real repository; every ``touch_sessions`` call is recorded."""

    def __init__(self, db: CentralDB, *, fail: bool = False) -> None:
        super().__init__(db)
        self.touches: list[tuple[list[str], datetime | None]] = []
        self.fail = fail

    def touch_sessions(self, session_ids: Sequence[str], *, at: datetime | None = None) -> None:
        self.touches.append((list(session_ids), at))
        if self.fail:
            raise OSError(28, "No space left on device")
        super().touch_sessions(session_ids, at=at)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


class Spawned:
    """A spawn that keeps the tasks, so a test can wait for them."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[Any]] = []

    def __call__(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        self.tasks.append(asyncio.get_running_loop().create_task(coro, name=name))


def _repo(tmp_path: Path, *, fail: bool = False) -> RecordingRepository:
    db = CentralDB(path=tmp_path / "central.db", migrations_root=REPO_ROOT / "migrations")
    db.migrate()
    return RecordingRepository(db, fail=fail)


def _sessions(repo: Repository, count: int) -> list[SessionRow]:
    andy = make_agent(repo, "Andy")
    return [
        repo.create_session(
            agent_group_id=andy.id, messaging_group_id=None, thread_id=None, mode="agent-shared"
        )
        for _ in range(count)
    ]


async def test_marks_before_the_write_join_it_and_a_later_mark_schedules_the_next(
    tmp_path: Path,
) -> None:
    repo = _repo(tmp_path)
    one, two, three = _sessions(repo, 3)
    spawned, clock = Spawned(), Clock()
    activity = SessionActivity(
        executors=shared_executors(), repo=repo, spawn=spawned, clock=clock, write_every_s=0.05
    )
    activity.mark([one.id])
    activity.mark([two.id])
    activity.mark([one.id, three.id])
    assert len(spawned.tasks) == 1  # one write scheduled for the three marks
    await spawned.tasks[0]
    assert repo.touches == [(sorted([one.id, two.id, three.id]), clock.now)]
    assert {repo.session(s.id).last_active for s in (one, two, three)} == {clock.now}

    activity.mark([two.id])
    assert len(spawned.tasks) == 2
    await spawned.tasks[1]
    assert repo.touches[1] == ([two.id], clock.now)
    assert repo.session(two.id).last_active == clock.now > repo.session(one.id).last_active


async def test_flush_writes_what_is_marked_when_the_host_stops(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    (one,) = _sessions(repo, 1)
    closed: list[str] = []

    def refused(coro: Coroutine[Any, Any, Any], name: str) -> None:  # the task owner is closed
        coro.close()
        closed.append(name)

    clock = Clock()
    activity = SessionActivity(
        executors=shared_executors(), repo=repo, spawn=refused, clock=clock, write_every_s=60
    )
    activity.mark([one.id])
    assert closed == ["session-activity"] and repo.touches == []
    await activity.flush()
    assert repo.touches == [([one.id], clock.now)]
    assert repo.session(one.id).last_active == clock.now
    await activity.flush()  # nothing marked: no write
    assert len(repo.touches) == 1


async def test_a_failed_write_is_logged_and_raises_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    repo = _repo(tmp_path, fail=True)
    (one,) = _sessions(repo, 1)
    activity = SessionActivity(
        executors=shared_executors(),
        repo=repo,
        spawn=lambda coro, name: coro.close(),
        clock=Clock(),
    )
    activity.mark([one.id])
    await activity.flush()
    assert len(repo.touches) == 1
    assert "could not record the activity of 1 session(s)" in caplog.text
