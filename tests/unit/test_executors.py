"""The executors: serial per session, parallel across sessions, the one central thread, shutdown."""

from __future__ import annotations

import ast
import asyncio
import os
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event

from nanoclaw.executors import (
    BlockingExecutor,
    CentralExecutor,
    ExecutorClosedError,
    Executors,
    SessionExecutor,
)
from nanoclaw.host import Host
from tests.conftest import REPO_ROOT
from tests.helpers import make_agent, proc_status, say, texts, wire_chat

WAIT_S = 10.0  # a deadline for a state, never a pause


async def test_one_session_is_serial_and_two_sessions_run_side_by_side() -> None:
    pool = SessionExecutor(workers=2)
    order: list[str] = []
    first_running = threading.Event()
    release = threading.Event()

    def first() -> None:
        order.append("s1-first-start")
        first_running.set()
        # Released by a job of another session: only possible if sessions run in parallel.
        assert release.wait(WAIT_S), "the other session's job never ran"
        order.append("s1-first-end")

    def second() -> None:
        order.append("s1-second")

    def other() -> None:
        assert first_running.wait(WAIT_S)
        order.append("s2")
        release.set()

    try:
        await asyncio.gather(pool.run("s1", first), pool.run("s1", second), pool.run("s2", other))
    finally:
        pool.close()
    assert order == ["s1-first-start", "s2", "s1-first-end", "s1-second"]
    assert pool.busy_sessions() == 0  # finished lanes are retired


async def test_one_session_keeps_submission_order() -> None:
    pool = SessionExecutor(workers=4)
    seen: list[int] = []
    try:
        await asyncio.gather(*(pool.run("s", seen.append, n) for n in range(50)))
    finally:
        pool.close()
    assert seen == list(range(50))


async def test_an_exception_reaches_the_caller_and_the_lane_goes_on() -> None:
    pool = SessionExecutor(workers=1)
    central = CentralExecutor()

    def boom() -> None:
        raise ValueError("bad row")

    try:
        with pytest.raises(ValueError, match="bad row"):
            await pool.run("s", boom)
        assert await pool.run("s", lambda: 7) == 7
        with pytest.raises(ValueError, match="bad row"):
            await central.run(boom)
        assert await central.run(int, "8") == 8
    finally:
        pool.close()
        central.close()


async def test_the_central_executor_is_one_thread() -> None:
    central = CentralExecutor()
    try:
        idents = await asyncio.gather(*(central.run(threading.get_ident) for _ in range(20)))
        assert len(set(idents)) == 1
        assert await central.run(central.owns_current_thread)
        assert not central.owns_current_thread()  # the event loop's thread is not it
    finally:
        central.close()


async def test_after_close_submissions_are_refused_and_running_work_finished() -> None:
    executors = Executors.build()
    started = threading.Event()
    finish = threading.Event()
    done: list[str] = []

    def slow() -> None:
        started.set()
        assert finish.wait(WAIT_S)
        done.append("slow")

    running = asyncio.ensure_future(executors.sessions.run("s", slow))
    assert await asyncio.to_thread(started.wait, WAIT_S)
    closing = asyncio.ensure_future(executors.close())
    finish.set()
    await closing
    await running
    assert done == ["slow"]  # close waited for the running job
    for submit in (
        executors.central.run(int, "1"),
        executors.blocking.run(int, "1"),
        executors.sessions.run("s", int, "1"),
    ):
        with pytest.raises(ExecutorClosedError):
            await submit


def held_job() -> tuple[Callable[[], None], threading.Event, threading.Event]:
    """A job that says it started and then waits until it is let finish."""
    started = threading.Event()
    finish = threading.Event()

    def slow() -> None:
        started.set()
        assert finish.wait(WAIT_S)

    return slow, started, finish


async def test_close_fails_queued_session_jobs_instead_of_leaving_them_waiting() -> None:
    pool = SessionExecutor(workers=1)
    slow, started, finish = held_job()
    running = asyncio.ensure_future(pool.run("a", slow))
    queued = asyncio.ensure_future(pool.run("b", int, "2"))  # waits for the one thread
    assert await asyncio.to_thread(started.wait, WAIT_S)
    closing = asyncio.ensure_future(asyncio.to_thread(pool.close))
    with pytest.raises(ExecutorClosedError):  # failed while the running job still runs
        await queued
    assert not closing.done()  # close waits for the running job
    finish.set()
    await closing
    await running


async def test_a_session_job_submitted_while_close_waits_is_refused_not_left_waiting() -> None:
    pool = SessionExecutor(workers=1)
    slow, started, finish = held_job()
    running = asyncio.ensure_future(pool.run("a", slow))
    assert await asyncio.to_thread(started.wait, WAIT_S)
    closing = asyncio.ensure_future(asyncio.to_thread(pool.close))
    queued = asyncio.ensure_future(pool.run("b", int, "2"))
    with pytest.raises(ExecutorClosedError):  # refused or failed, whichever side of close
        await asyncio.wait_for(queued, WAIT_S)
    assert not closing.done()
    late = asyncio.ensure_future(pool.run("a", int, "3"))  # behind the running job's lane
    finish.set()
    await closing
    await running
    with pytest.raises(ExecutorClosedError):
        await asyncio.wait_for(late, WAIT_S)
    assert pool.busy_sessions() == 0


async def test_close_fails_a_queued_central_job_with_executor_closed() -> None:
    central = CentralExecutor()
    started = threading.Event()
    finish = threading.Event()

    def slow() -> None:
        started.set()
        assert finish.wait(WAIT_S)

    running = asyncio.ensure_future(central.run(slow))
    queued = asyncio.ensure_future(central.run(int, "2"))  # behind slow on the one thread
    assert await asyncio.to_thread(started.wait, WAIT_S)
    closing = asyncio.ensure_future(asyncio.to_thread(central.close))
    with pytest.raises(ExecutorClosedError):  # an error the caller handles, not a cancel
        await queued
    finish.set()
    await closing
    await running


async def test_blocking_executor_runs_off_the_loop() -> None:
    blocking = BlockingExecutor(workers=2)
    try:
        assert await blocking.run(threading.get_ident) != threading.get_ident()
    finally:
        blocking.close()


async def test_every_central_statement_of_routed_messages_runs_on_the_central_thread(
    host: Host,
) -> None:
    agent = make_agent(host.repo, "Andy")
    wire_chat(host.repo, agent, "local")
    host.repo.upsert_user("cli:olive", kind="cli", display_name="olive")
    host.repo.grant_role("cli:olive", "owner", granted_by="test")
    on_central: list[bool] = []

    def on_statement(*_args: Any) -> None:
        on_central.append(host.executors.central.owns_current_thread())

    socket = host.settings.cli_socket
    # Statements through the ORM, and every taking of the one connection (plain sqlite3 too).
    hooks = ("before_cursor_execute", "checkout")
    for hook in hooks:
        event.listen(host.db.engine, hook, on_statement)
    try:
        first = await say(socket, "hello")  # creates the session, starts it
        again = await say(socket, "and again")  # the warm path
        command = await say(socket, "/members Andy", sender="olive")  # a chat command
    finally:
        for hook in hooks:
            event.remove(host.db.engine, hook, on_statement)
    assert texts(first) and texts(again), (first, again)
    assert texts(command) and "denied" not in texts(command)[0], command
    assert on_central, "no central statement was seen"
    assert all(on_central), f"{on_central.count(False)} of {len(on_central)} off the thread"


async def test_routed_messages_are_written_on_their_session_lane(
    host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = make_agent(host.repo, "Andy")
    wire_chat(host.repo, agent, "local")
    store = host.sessions.store
    insert = store.insert_messages
    writers: list[str] = []

    def recording_insert(*args: Any, **kwargs: Any) -> Any:
        writers.append(threading.current_thread().name)
        return insert(*args, **kwargs)

    monkeypatch.setattr(store, "insert_messages", recording_insert)
    socket = host.settings.cli_socket
    first = await say(socket, "hello")  # creates the session (central), then writes the row
    again = await say(socket, "and again")
    assert texts(first) and texts(again), (first, again)
    assert len(writers) >= 2 and all(name.startswith("nanoclaw-session") for name in writers), (
        writers
    )


def test_asyncio_to_thread_is_used_only_in_the_executors_module() -> None:
    package = REPO_ROOT / "src" / "nanoclaw"
    offenders: list[str] = []
    for path in sorted(package.rglob("*.py")):
        name = str(path.relative_to(package))
        if name == "executors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Attribute) and node.attr == "to_thread":
                offenders.append(f"{name}:{node.lineno}")
            if (
                isinstance(node, ast.ImportFrom)
                and node.module == "asyncio"
                and any(alias.name == "to_thread" for alias in node.names)
            ):
                offenders.append(f"{name}:{node.lineno}")
    assert offenders == [], offenders


def _switches(native_id: int) -> int:
    """Context switches of one of this process's threads so far, as Linux counts them."""
    status = proc_status(os.getpid(), native_id)
    return int(status["voluntary_ctxt_switches"]) + int(status["nonvoluntary_ctxt_switches"])


async def test_a_task_wakes_one_idle_thread_not_two() -> None:
    pool = BlockingExecutor(workers=4)
    try:
        # Four threads, each started by a task that waits for the others: then all idle.
        started = threading.Barrier(4, timeout=WAIT_S)
        await asyncio.gather(*(pool.run(started.wait) for _ in range(4)))
        ran_on: set[int] = set()
        before: dict[int, int] = {}
        threads = list(pool._threads._threads)
        assert len(threads) == 4
        for thread in threads:
            assert thread.native_id is not None
            before[thread.native_id] = _switches(thread.native_id)
        for _ in range(50):
            ran_on.add(await pool.run(threading.get_native_id))
        untouched = [tid for tid in before if tid not in ran_on]
        # The most recently idle thread takes each task, so most threads run none.
        assert untouched, ran_on
        woken = sum(_switches(tid) - before[tid] for tid in untouched)
        # Idle threads sharing one queue woke once per task (50 here); a gate each: none.
        assert woken < 5, woken
    finally:
        pool.close()


async def test_a_lane_whose_thread_cannot_start_fails_its_job_and_recovers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pool = SessionExecutor(workers=2)
    real_start = threading.Thread.start

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    try:
        monkeypatch.setattr(threading.Thread, "start", refuse)
        with pytest.raises(RuntimeError, match="can't start new thread"):
            await asyncio.wait_for(pool.run("s1", lambda: "never"), WAIT_S)
        assert pool.busy_sessions() == 0  # the lane is not left scheduled with no step
        monkeypatch.setattr(threading.Thread, "start", real_start)
        assert await asyncio.wait_for(pool.run("s1", lambda: "ran"), WAIT_S) == "ran"
    finally:
        pool.close()
