"""The session-DB write worker: a real child process writes rows as the host would, per-session
lanes, errors rebuilt as their own class, a worker killed mid-call loses nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nanoclaw.contract.layout import SessionLayout
from nanoclaw.errors import SandboxFileError
from nanoclaw.executors import Executors
from nanoclaw.sessions.inbound_rows import InboundMessage
from nanoclaw.sessions.store import SessionStore
from nanoclaw.sessions.write_client import (
    MAX_FAILED_STARTS,
    WriteWorker,
    WriteWorkerUnavailableError,
)
from nanoclaw.sessions.write_protocol import WriteOp, WriteWorkerGoneError
from nanoclaw.sessions.writes import SessionWrites
from nanoclaw.settings import Settings
from tests.crash.harness import HostProcess, Observers, send_until_accepted
from tests.helpers import allowed_cpus, install_with_chats, until

pytestmark = pytest.mark.timeout(60)

WORKER_MODULE = "nanoclaw.sessions.write_worker"
ALL_CPUS = frozenset(os.sched_getaffinity(0))
MULTI_CPU = len(ALL_CPUS) >= 2


@pytest.fixture
def store(tmp_path: Path) -> SessionStore:
    return SessionStore(sessions_root=tmp_path / "sessions")


@pytest.fixture
async def worker() -> AsyncIterator[WriteWorker]:
    instance = WriteWorker(respawn_after_s=0.0)
    await instance.start()
    yield instance
    await instance.close()


@pytest.fixture
async def writes(store: SessionStore, worker: WriteWorker) -> AsyncIterator[SessionWrites]:
    executors = Executors.build()
    yield SessionWrites(executors=executors, store=store, worker=worker)
    await executors.close()


def _row(message_id: str, text: str = "hi") -> InboundMessage:
    return InboundMessage(id=message_id, kind="chat", content={"text": text})


def _rows(layout: SessionLayout) -> list[tuple[str, int, str]]:
    with sqlite3.connect(layout.inbound_db) as conn:
        return list(conn.execute("SELECT id, seq, content FROM messages_in ORDER BY seq"))


def _delivered(layout: SessionLayout) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(layout.inbound_db) as conn:
        return list(
            conn.execute("SELECT message_out_id, status, platform_message_id FROM delivered")
        )


def _worker_pid(worker: WriteWorker) -> int:
    pid = worker.pid
    assert pid is not None
    return pid


async def test_the_worker_writes_rows_and_delivery_records_as_the_host_does(
    store: SessionStore, writes: SessionWrites, worker: WriteWorker
) -> None:
    layout = store.ensure("andy", "s1")
    assert _worker_pid(worker) != os.getpid()

    assert await writes.insert_messages("s1", layout, [_row("m1"), _row("m2")]) == [2, 4]
    # The same id again keeps its seq and adds no row (a re-delivered platform event).
    assert await writes.insert_messages("s1", layout, [_row("m1", "again")]) == [2]
    await writes.record_delivery(
        "s1", layout, "out-1", status="delivered", platform_message_id="p9"
    )
    await writes.record_delivery("s1", layout, "out-1", status="failed", error="late")

    assert [(r[0], r[1]) for r in _rows(layout)] == [("m1", 2), ("m2", 4)]
    assert '"hi"' in _rows(layout)[0][2]
    assert _delivered(layout) == [("out-1", "delivered", "p9")]  # terminal: never overwritten
    assert worker.starts == 1


async def test_one_sessions_calls_keep_their_order(
    store: SessionStore, writes: SessionWrites
) -> None:
    layout = store.ensure("andy", "s1")
    ids = [f"m{i}" for i in range(40)]
    seqs = await asyncio.gather(
        *(writes.insert_messages("s1", layout, [_row(message_id)]) for message_id in ids)
    )
    assert [s for (s,) in seqs] == [2 * (i + 1) for i in range(40)]
    assert [r[0] for r in _rows(layout)] == ids


async def test_a_listener_hears_of_a_scheduled_row_the_worker_wrote(
    store: SessionStore, writes: SessionWrites
) -> None:
    layout = store.ensure("andy", "s1")
    heard: list[str] = []
    store.add_insert_listener(lambda written: heard.append(written.root.name))
    await writes.insert_messages("s1", layout, [_row("now")])
    assert heard == []
    later = InboundMessage(
        id="later", kind="task", content={"text": "t"}, process_after="2099-01-01T00:00:00Z"
    )
    await writes.insert_messages("s1", layout, [later])
    assert heard == ["s1"]
    # Written again (its worker died after the commit, before the answer): heard again, since
    # the first answer may never have reached the host.
    await writes.insert_messages("s1", layout, [later])
    assert heard == ["s1", "s1"]


async def test_errors_arrive_as_the_class_the_host_handles(
    store: SessionStore, writes: SessionWrites, worker: WriteWorker
) -> None:
    garbage = store.ensure("andy", "garbage")
    garbage.inbound_db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(sqlite3.DatabaseError) as remote:
        await worker.call(WriteOp.INSERT_MESSAGES, "garbage", garbage.inbound_db, [_row("m")])
    with pytest.raises(sqlite3.DatabaseError) as local:
        store.insert_messages(garbage, [_row("m")])
    assert remote.value.sqlite_errorcode == local.value.sqlite_errorcode  # type: ignore[attr-defined]
    assert remote.value.sqlite_errorname == "SQLITE_NOTADB"  # type: ignore[attr-defined]
    assert any("write worker" in note for note in remote.value.__notes__)

    linked = store.ensure("andy", "linked")
    target = linked.root / "elsewhere.db"
    linked.inbound_db.rename(target)
    linked.inbound_db.symlink_to(target)
    with pytest.raises(SandboxFileError) as refused:
        await writes.insert_messages("linked", linked, [_row("m")])
    with pytest.raises(SandboxFileError) as refused_here:
        store.insert_messages(linked, [_row("m")])
    assert refused.value.problem == refused_here.value.problem
    assert refused.value.path == refused_here.value.path

    # The worker is still serving: one session's bad file is that session's alone.
    good = store.ensure("andy", "good")
    assert await writes.insert_messages("good", good, [_row("m")]) == [2]
    assert worker.starts == 1


async def test_a_locked_inbound_db_holds_up_only_its_own_session(
    store: SessionStore, writes: SessionWrites
) -> None:
    locked, free = store.ensure("andy", "locked"), store.ensure("andy", "free")
    holder = sqlite3.connect(locked.inbound_db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer mid-transaction
    try:
        stuck = asyncio.create_task(writes.insert_messages("locked", locked, [_row("waits")]))
        assert await writes.insert_messages("free", free, [_row("goes")]) == [2]
        assert not stuck.done()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert await stuck == [2]
    assert [r[0] for r in _rows(locked)] == ["waits"]


async def test_a_worker_killed_mid_call_loses_nothing_and_is_started_again(
    store: SessionStore, writes: SessionWrites, worker: WriteWorker
) -> None:
    layout = store.ensure("andy", "s1")
    first = _worker_pid(worker)
    holder = sqlite3.connect(layout.inbound_db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        call = asyncio.create_task(writes.insert_messages("s1", layout, [_row("m1")]))
        await asyncio.sleep(0)  # sent: the worker now waits on the lock
        os.kill(first, signal.SIGKILL)
        await until(lambda: worker.pid is None)
        assert not call.done()  # written again in the host, which waits on the lock too
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert await call == [2]
    assert [r[0] for r in _rows(layout)] == ["m1"]  # once, not twice

    # The next call starts a new worker (respawn_after_s=0 here).
    assert await writes.insert_messages("s1", layout, [_row("m2")]) == [4]
    assert worker.starts == 2
    assert _worker_pid(worker) != first


async def test_a_closed_worker_lets_its_calls_finish_and_exits(
    store: SessionStore, worker: WriteWorker
) -> None:
    layout = store.ensure("andy", "s1")
    calls = [
        asyncio.create_task(
            worker.call(WriteOp.INSERT_MESSAGES, "s1", layout.inbound_db, [_row(f"m{i}")])
        )
        for i in range(10)
    ]
    await asyncio.sleep(0)  # every call sent before the close
    pid = _worker_pid(worker)
    await worker.close()
    assert len(await asyncio.gather(*calls)) == 10
    assert len(_rows(layout)) == 10
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # exited and reaped
    with pytest.raises(WriteWorkerUnavailableError):
        await worker.call(WriteOp.INSERT_MESSAGES, "s1", layout.inbound_db, [_row("late")])


async def test_a_worker_that_dies_at_start_is_given_up_and_nothing_is_lost(
    store: SessionStore,
) -> None:
    broken = WriteWorker(argv=(sys.executable, "-c", "raise SystemExit(3)"), respawn_after_s=0.0)
    executors = Executors.build()
    try:
        writes = SessionWrites(executors=executors, store=store, worker=broken)
        layout = store.ensure("andy", "s1")
        for i in range(MAX_FAILED_STARTS + 3):
            assert await writes.insert_messages("s1", layout, [_row(f"m{i}")]) == [2 * (i + 1)]
        assert broken.starts == MAX_FAILED_STARTS  # then no more tries
        with pytest.raises(WriteWorkerUnavailableError, match="not started again"):
            await broken.call(WriteOp.INSERT_MESSAGES, "s1", layout.inbound_db, [_row("x")])
    finally:
        await broken.close()
        await executors.close()
    assert len(_rows(layout)) == MAX_FAILED_STARTS + 3


async def test_while_a_dead_worker_may_not_restart_the_host_writes(store: SessionStore) -> None:
    worker = WriteWorker(respawn_after_s=3600.0)
    await worker.start()
    executors = Executors.build()
    try:
        writes = SessionWrites(executors=executors, store=store, worker=worker)
        layout = store.ensure("andy", "s1")
        os.kill(_worker_pid(worker), signal.SIGKILL)
        await until(lambda: worker.pid is None)
        assert await writes.insert_messages("s1", layout, [_row("m1")]) == [2]
        await writes.record_delivery("s1", layout, "out-1", status="delivered")
        assert worker.starts == 1  # restarted too recently: in the host instead
    finally:
        await worker.close()
        await executors.close()
    assert [r[0] for r in _rows(layout)] == ["m1"]
    assert _delivered(layout) == [("out-1", "delivered", None)]


async def test_closing_while_a_worker_starts_leaves_no_worker_behind(
    store: SessionStore,
) -> None:
    worker = WriteWorker()
    layout = store.ensure("andy", "s1")
    call = asyncio.create_task(
        worker.call(WriteOp.INSERT_MESSAGES, "s1", layout.inbound_db, [_row("m1")])
    )
    await asyncio.sleep(0)  # the call is starting the worker
    await worker.close()
    outcome = (await asyncio.gather(call, return_exceptions=True))[0]
    assert worker.starts == 1
    if isinstance(outcome, BaseException):  # sent after the worker stopped reading
        assert isinstance(outcome, WriteWorkerGoneError), outcome
    else:
        assert outcome.seqs == (2,)
    assert not [c for c in _children(os.getpid()).values() if WORKER_MODULE in c]


async def test_without_a_worker_the_writes_run_on_the_sessions_lane(store: SessionStore) -> None:
    executors = Executors.build()
    try:
        writes = SessionWrites(executors=executors, store=store)
        layout = store.ensure("andy", "s1")
        assert await writes.insert_messages("s1", layout, [_row("m1")]) == [2]
        await writes.record_delivery("s1", layout, "out-1", status="delivered")
    finally:
        await executors.close()
    assert [r[0] for r in _rows(layout)] == ["m1"]
    assert _delivered(layout) == [("out-1", "delivered", None)]


def _children(pid: int) -> dict[int, str]:
    """Live child processes of ``pid``: pid -> command line."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            found[int(entry.name)] = command
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("enabled", ["1", "0"])
async def test_a_real_host_writes_through_its_worker_which_ends_with_it(
    settings: Settings, tmp_path: Path, enabled: str
) -> None:
    install_with_chats(settings, ["c0"])
    host = HostProcess(settings, log_dir=tmp_path, NANOCLAW_SESSION_WRITE_WORKER=enabled)
    observers = Observers(settings.cli_socket, ["c0"])
    host.start()
    observers.start()
    try:
        await observers.all_ready(within_s=30)
        await send_until_accepted(settings.cli_socket, chat="c0", message_id="m-1", text="hi")
        await until(lambda: bool(observers.replies["c0"]), within_s=30)
        assert host.proc is not None
        workers = [
            pid for pid, command in _children(host.proc.pid).items() if WORKER_MODULE in command
        ]
        if enabled == "0" or not MULTI_CPU:
            assert workers == [], host.logs()
            return
        assert len(workers) == 1, host.logs()
        (worker,) = workers
        # Each on a CPU of its own; the runner keeps them all.
        assert allowed_cpus(worker) == frozenset({min(ALL_CPUS)})
        assert allowed_cpus(host.proc.pid) == frozenset({max(ALL_CPUS)})
        host.kill()  # SIGKILL: no shutdown code runs in the host
        await until(lambda: not _alive(worker), within_s=30)
    finally:
        await observers.close()
        host.stop()
