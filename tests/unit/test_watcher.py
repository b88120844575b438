"""The change watcher: inotify wakes on a commit; polling backs off when idle and speeds up again."""

from __future__ import annotations

import asyncio
import select
import sqlite3
import time
from pathlib import Path

from nanoclaw.contract.watcher import ChangeWatcher, WatchMode

SLOW_S = 60.0


def _db(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("CREATE TABLE IF NOT EXISTS t (v TEXT)")
    conn.close()
    return path


def _write(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("INSERT INTO t VALUES ('x')")
    conn.close()


async def test_inotify_wakes_on_a_commit_and_names_the_changed_file(tmp_path: Path) -> None:
    a, b = _db(tmp_path / "a" / "x.db"), _db(tmp_path / "b" / "x.db")
    watcher = ChangeWatcher(fast_interval_s=SLOW_S, slow_interval_s=SLOW_S)
    assert watcher.uses_inotify
    watcher.watch("a", a)
    watcher.watch("b", b)
    assert watcher.polled_keys() == set()
    assert await watcher.wait(0) == set()
    _write(b)
    assert await watcher.wait(30) == {"b"}  # polling is a minute away: this was inotify
    watcher.unwatch("b")
    _write(b)
    _write(a)
    assert await watcher.wait(30) == {"a"}
    watcher.close()


async def test_a_change_seen_while_the_owner_is_busy_is_read_at_once_and_kept(
    tmp_path: Path,
) -> None:
    # The fd is level-triggered: left unread while the owner is away (a delivery pass, a turn),
    # it would wake the event loop on every iteration and spin it at full CPU.
    db = _db(tmp_path / "s" / "x.db")
    watcher = ChangeWatcher(fast_interval_s=SLOW_S, slow_interval_s=SLOW_S)
    watcher.watch("s", db)
    assert await watcher.wait(0) == set()  # attaches the reader; the owner now does other work
    fd = watcher.inotify_fd
    assert fd is not None
    _write(db)
    assert select.select([fd], [], [], 5)[0] == [fd]  # the kernel has the events queued
    deadline = time.monotonic() + 10
    while select.select([fd], [], [], 0)[0]:
        assert time.monotonic() < deadline, "the inotify fd was left readable"
        await asyncio.sleep(0.01)  # the loop runs its readers, as it does while the owner works
    assert await watcher.wait(0) == {"s"}  # what the reader took is handed over, not lost
    assert await watcher.wait(0) == set()
    watcher.close()


async def test_a_write_wakes_the_watcher_at_its_commit_not_while_it_runs(tmp_path: Path) -> None:
    db = _db(tmp_path / "s" / "x.db")
    watcher = ChangeWatcher(fast_interval_s=SLOW_S, slow_interval_s=SLOW_S)
    watcher.watch("s", db)
    assert await watcher.wait(0) == set()
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 200)
        assert db.with_name("x.db-journal").exists()  # the transaction has begun writing
        # inotify queues events as the syscalls happen: wait(0) reads all there are so far
        assert await watcher.wait(0) == set()
        conn.execute("COMMIT")
    finally:
        conn.close()
    assert await watcher.wait(30) == {"s"}  # the journal's deletion: the commit point
    assert await watcher.wait(0) == set()  # one wake for the transaction, not one per write
    watcher.close()


async def test_a_file_beside_the_db_does_not_wake_the_watcher(tmp_path: Path) -> None:
    db = _db(tmp_path / "s" / "x.db")
    watcher = ChangeWatcher(fast_interval_s=SLOW_S, slow_interval_s=SLOW_S)
    watcher.watch("s", db)
    (tmp_path / "s" / ".heartbeat").write_text("beat")
    _write(db)
    assert await watcher.wait(30) == {"s"}
    (tmp_path / "s" / ".heartbeat").write_text("beat again")
    assert await watcher.wait(0.2) == set()
    watcher.close()


async def test_polling_detects_a_change_and_backs_off_when_idle(tmp_path: Path) -> None:
    db = _db(tmp_path / "s" / "x.db")
    now = [0.0]
    watcher = ChangeWatcher(
        fast_interval_s=0.01, slow_interval_s=1.0, fast_for_s=3.0, mode=WatchMode.POLL,
        clock=lambda: now[0],
    )  # fmt: skip
    assert not watcher.uses_inotify
    watcher.watch("s", db)
    _write(db)
    assert await watcher.wait(0) == {"s"}
    intervals = []
    for _ in range(12):  # idle: the clock moves past the fast period, polls back off
        now[0] += 1.0
        await watcher.wait(0)
        intervals.append(watcher.poll_interval_s)
    assert intervals[-1] == 1.0 and intervals[0] < intervals[-1]
    watcher.note_activity()
    assert watcher.poll_interval_s == 0.01


async def test_an_interrupt_ends_the_pending_wait_or_else_the_next_one(tmp_path: Path) -> None:
    db = _db(tmp_path / "s" / "x.db")
    for mode in (WatchMode.AUTO, WatchMode.POLL):
        watcher = ChangeWatcher(fast_interval_s=SLOW_S, slow_interval_s=SLOW_S, mode=mode)
        watcher.watch("s", db)
        assert await watcher.wait(0) == set()
        waiting = asyncio.create_task(watcher.wait(30))
        await asyncio.sleep(0)  # the wait is pending now
        watcher.interrupt()
        assert await asyncio.wait_for(waiting, 5) == set()
        watcher.interrupt()  # nobody waits: the next wait ends at once
        assert await asyncio.wait_for(watcher.wait(30), 5) == set()
        _write(db)
        watcher.note_activity()  # polling: look now, not a minute from now
        assert await asyncio.wait_for(watcher.wait(30), 5) == {"s"}  # not spent on a change
        watcher.close()
