"""Waking (invariant 4): never raises, joins in-flight starts, one runner per session, FIFO cap.

Over the cap, the least recently active idle runner makes room; a mid-turn one never does.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from nanoclaw.db.central import CentralDB
from nanoclaw.db.repository import Repository
from nanoclaw.db.sqlite import EngineCache
from nanoclaw.errors import RuntimeUnavailableError
from nanoclaw.runtime.process import ProcessRuntime
from nanoclaw.runtime.supervisor import Supervisor
from nanoclaw.sessions.outbound_reader import SessionReader
from nanoclaw.sessions.service import SessionService
from nanoclaw.sessions.store import SessionStore
from nanoclaw.settings import Settings
from nanoclaw.tasks import TaskOwner
from tests.conftest import REPO_ROOT
from tests.fakes.runtime import FakeHandle, FakeRuntime
from tests.helpers import make_agent, shared_executors, wire_chat


class Rig:
    def __init__(self, tmp: Path, settings: Settings, runtime: FakeRuntime, cap: int = 5) -> None:
        db = CentralDB(path=tmp / "c.db", migrations_root=REPO_ROOT / "migrations")
        db.migrate()
        self.repo = Repository(db)
        engines = EngineCache()
        store = SessionStore(sessions_root=tmp / "s", engines=engines)
        self.sessions = SessionService(repo=self.repo, store=store)
        self.runtime = runtime
        self.tasks = TaskOwner()
        self.supervisor = Supervisor(
            executors=shared_executors(),
            settings=settings.model_copy(update={"max_concurrent_runners": cap}),
            runtime=runtime,
            repo=self.repo,
            sessions=self.sessions,
            reader=SessionReader(engines=engines),
            spawn=self.tasks.spawn,
        )
        self.agent = make_agent(self.repo, "Andy")

    def session(self, chat: str) -> str:
        mg, _ = wire_chat(self.repo, self.agent, chat)
        row, _ = self.sessions.resolve(
            agent_group_id=self.agent.id, messaging_group_id=mg.id, thread_id=None, mode="shared"
        )
        return row.id


async def test_concurrent_wakes_join_one_start(tmp_path: Path, settings: Settings) -> None:
    rig = Rig(tmp_path, settings, FakeRuntime(start_delay_s=0.1))
    sid = rig.session("a")
    results = await asyncio.gather(*(rig.supervisor.wake(sid) for _ in range(5)))
    assert results == [True] * 5
    assert rig.runtime.starts == [sid]
    assert await rig.supervisor.wake(sid) is True and rig.runtime.starts == [sid]
    assert rig.repo.session(sid).runner_status == "running"


async def test_wake_never_raises_and_reports_false_when_the_runtime_is_down(
    tmp_path: Path, settings: Settings
) -> None:
    rig = Rig(tmp_path, settings, FakeRuntime(available=False))
    sid = rig.session("a")
    assert await rig.supervisor.wake(sid) is False
    assert await rig.supervisor.wake("no-such-session") is False
    rig.runtime.available = True
    assert await rig.supervisor.wake(sid) is True


async def test_over_the_cap_sessions_wait_and_start_in_arrival_order(
    tmp_path: Path, settings: Settings
) -> None:
    rig = Rig(tmp_path, settings, FakeRuntime(), cap=2)
    a, b, c, d = (rig.session(x) for x in "abcd")
    assert await rig.supervisor.wake(a) and await rig.supervisor.wake(b)
    _claim(rig, a, "m-a")  # both mid-turn: no idle runner can make room
    _claim(rig, b, "m-b")
    assert [await rig.supervisor.wake(s) for s in (c, d)] == [False, False]
    assert rig.supervisor.queued_sessions() == [c, d]
    rig.runtime.handles[a].finish(0)
    for _ in range(100):
        if c in rig.runtime.starts:
            break
        await asyncio.sleep(0.01)
    assert rig.runtime.starts == [a, b, c]
    assert rig.supervisor.running_sessions() == {b, c}
    rig.runtime.handles[b].finish(0)
    for _ in range(100):
        if d in rig.runtime.starts:
            break
        await asyncio.sleep(0.01)
    assert rig.runtime.starts == [a, b, c, d]
    await rig.supervisor.close()


async def test_an_exit_is_recorded_with_its_code(tmp_path: Path, settings: Settings) -> None:
    rig = Rig(tmp_path, settings, FakeRuntime())
    sid = rig.session("a")
    exits: list[tuple[str, int | None]] = []

    async def listener(session_id: str, result: object) -> None:
        exits.append((session_id, getattr(result, "exit_code", None)))

    rig.supervisor.on_exit(listener)
    await rig.supervisor.wake(sid)
    rig.runtime.handles[sid].finish(70)
    for _ in range(100):
        if exits:
            break
        await asyncio.sleep(0.01)
    assert exits == [(sid, 70)]
    row = rig.repo.session(sid)
    assert (row.runner_status, row.last_exit_code) == ("stopped", 70)


async def test_close_waits_for_a_start_whose_waker_was_cancelled(
    tmp_path: Path, settings: Settings
) -> None:
    rig = Rig(tmp_path, settings, FakeRuntime(start_delay_s=0.2))
    sid = rig.session("a")
    waker = asyncio.create_task(rig.supervisor.wake(sid))
    await asyncio.sleep(0.05)
    waker.cancel()
    await rig.supervisor.close()
    assert rig.runtime.starts == [sid]
    assert not rig.runtime.handles[
        sid
    ].is_running()  # started, then stopped by close: none left unowned


async def test_the_process_runtime_refuses_unless_enabled() -> None:
    runtime = ProcessRuntime(blocking=shared_executors().blocking, python="python3", enabled=False)
    with pytest.raises(RuntimeUnavailableError, match="NANOCLAW_ALLOW_PROCESS_RUNTIME"):
        await runtime.check()


def _claim(rig: Rig, session_id: str, message_id: str) -> None:
    """Write a ``processing`` claim into the session's outbound.db, as a runner mid-turn does."""
    layout = rig.sessions.layout(rig.repo.session(session_id))
    conn = sqlite3.connect(layout.outbound_db)
    with conn:
        conn.execute(
            "INSERT INTO processing_ack (message_id, status, status_changed) VALUES (?, ?, ?)",
            (message_id, "processing", "2026-01-01T00:00:00Z"),
        )
    conn.close()


async def _until(predicate: Callable[[], bool]) -> None:
    for _ in range(300):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never became true")


async def test_over_the_cap_the_least_recently_active_idle_runner_makes_room(
    tmp_path: Path, settings: Settings
) -> None:
    rig = Rig(tmp_path, settings, FakeRuntime(), cap=2)
    a, b, c = (rig.session(x) for x in "abc")
    assert await rig.supervisor.wake(a) and await rig.supervisor.wake(b)
    _claim(rig, a, "m-a")  # a is mid-turn (least recently active, but never evicted)
    assert await rig.supervisor.wake(c) is False  # queued; room is being made
    await _until(lambda: c in rig.supervisor.running_sessions())
    assert rig.supervisor.running_sessions() == {a, c}
    assert rig.runtime.handles[a].is_running()
    assert not rig.runtime.handles[b].is_running()
    assert rig.supervisor.queued_sessions() == []
    await rig.supervisor.close()


async def test_over_the_cap_no_mid_turn_runner_is_stopped(
    tmp_path: Path, settings: Settings
) -> None:
    rig = Rig(tmp_path, settings, FakeRuntime(), cap=2)
    a, b, c = (rig.session(x) for x in "abc")
    assert await rig.supervisor.wake(a) and await rig.supervisor.wake(b)
    _claim(rig, a, "m-a")
    _claim(rig, b, "m-b")
    assert await rig.supervisor.wake(c) is False
    assert rig.supervisor.queued_sessions() == [c]
    assert rig.runtime.handles[a].is_running() and rig.runtime.handles[b].is_running()
    rig.runtime.handles[b].finish(0)  # b's turn ended and it exited: c takes the slot
    await _until(lambda: c in rig.supervisor.running_sessions())
    assert rig.runtime.handles[a].is_running()
    await rig.supervisor.close()


async def test_a_wake_for_a_runner_being_evicted_queues_it_again(
    tmp_path: Path, settings: Settings
) -> None:
    rig = Rig(tmp_path, settings, FakeRuntime(), cap=1)
    a, b = rig.session("a"), rig.session("b")
    assert await rig.supervisor.wake(a)
    rig.runtime.handles[a].stop = _slow_stop(rig.runtime.handles[a])  # type: ignore[method-assign,assignment]
    assert await rig.supervisor.wake(b) is False
    assert await rig.supervisor.wake(a) is False  # being stopped: it waits behind b
    assert rig.supervisor.queued_sessions() == [b, a]
    await _until(lambda: b in rig.supervisor.running_sessions())
    assert rig.supervisor.queued_sessions() == [a]
    await rig.supervisor.close()


def _slow_stop(handle: FakeHandle) -> Callable[..., Awaitable[None]]:
    async def stop(*, grace_s: float) -> None:
        await asyncio.sleep(0.05)
        handle.finish(-15)

    return stop
