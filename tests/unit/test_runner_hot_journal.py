"""A hot journal met by the runner's read-only reader is a transient retry, not a crash.

A throughput run killed a runner with ``sqlite3.OperationalError: attempt to write a readonly
database``: a host write interrupted mid-transaction leaves ``inbound.db-journal`` hot, and a
read-only connection cannot roll it back (``SQLITE_READONLY_ROLLBACK``). Here a real process
is killed inside a write transaction to make a real hot journal.
"""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from agent_runner.db import InboundUnreadableError, SessionDB
from agent_runner.rows import InboundRow

from nanoclaw.contract.layout import SessionLayout
from nanoclaw.sessions.store import InboundMessage, SessionStore

KILLED_MID_WRITE = """
import os, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA cache_size=1")  # spill to the file, so the journal holds the old pages
conn.execute("BEGIN IMMEDIATE")
conn.execute("UPDATE messages_in SET content = ? ", ("x" * 4000,))
conn.executemany("INSERT INTO messages_in (id, seq, kind, timestamp, content) VALUES (?,?,?,?,?)",
                 [(f"junk{i}", 1000 + 2 * i, "chat", "t", "y" * 2000) for i in range(500)])
os._exit(9)  # the writer dies inside its transaction
"""


@pytest.fixture
def hot(tmp_path: Path) -> SessionLayout:
    store = SessionStore(sessions_root=tmp_path)
    layout = store.ensure("andy", "s1")
    store.insert_messages(layout, [InboundMessage(id="m1", kind="chat", content={"text": "hi"},
                                                  channel_type="cli", platform_id="local")])  # fmt: skip
    store.prepare_outbound(layout)
    store.forget(layout)
    subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, str(layout.inbound_db)], check=False)
    assert Path(f"{layout.inbound_db}-journal").stat().st_size > 0
    return layout


def test_positive_control_a_plain_read_only_reader_fails_on_it(hot: SessionLayout) -> None:
    with (
        pytest.raises(sqlite3.OperationalError, match="readonly database"),
        sqlite3.connect(f"file:{hot.inbound_db}?mode=ro", uri=True) as conn,
    ):
        conn.execute("SELECT count(*) FROM messages_in").fetchone()


def test_the_runner_retries_until_the_host_s_next_write_recovers_the_file(
    hot: SessionLayout, caplog: pytest.LogCaptureFixture
) -> None:
    db = SessionDB(inbound_path=hot.inbound_db, outbound_path=hot.outbound_db)
    got: list[list[InboundRow]] = []
    with caplog.at_level(logging.DEBUG, logger="nanoclaw.contract.sessiondb"):
        reader = threading.Thread(
            target=lambda: got.append(db.pending(now="9", include_on_wake=True))
        )
        reader.start()
        deadline = time.monotonic() + 10
        while not any("needs a writer" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "the reader never met the hot journal"
            time.sleep(0.005)
        # the host's next write opens read-write, which rolls the journal back
        with sqlite3.connect(hot.inbound_db) as conn:
            conn.execute("SELECT count(*) FROM messages_in").fetchone()
        reader.join(timeout=10)
    assert not reader.is_alive()
    ((row,),) = got
    assert (row.id, row.text) == ("m1", "hi")  # the pre-crash view: the torn write is gone


def test_an_unrecovered_journal_gives_a_transient_error_within_the_deadline(
    hot: SessionLayout,
) -> None:
    db = SessionDB(inbound_path=hot.inbound_db, outbound_path=hot.outbound_db)
    with pytest.raises(InboundUnreadableError, match="readonly database"):
        db.pending(now="9", include_on_wake=True)
