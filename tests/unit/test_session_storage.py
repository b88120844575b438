"""Session storage invariants (DESIGN §2, invariants 1–3), proved on real SQLite files."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import pytest
from agent_runner.db import OutboundMessage, SessionDB, read_inbound
from sqlalchemy.exc import IntegrityError

from nanoclaw.contract.layout import SessionLayout
from nanoclaw.contract.seq import next_host_seq, next_runner_seq
from nanoclaw.contract.sessiondb import SessionFile, head_version
from nanoclaw.db.sqlite import make_engine
from nanoclaw.sessions.schema import messages_in, messages_out
from nanoclaw.sessions.store import InboundMessage, SessionStore


@pytest.fixture
def store(tmp_path: Path) -> SessionStore:
    return SessionStore(sessions_root=tmp_path / "sessions")


@pytest.fixture
def layout(store: SessionStore) -> SessionLayout:
    layout = store.ensure("andy", "sess-1")
    store.prepare_outbound(layout)
    return layout


def chat(mid: str, text: str = "hi", trigger: int = 1) -> InboundMessage:
    return InboundMessage(
        id=mid,
        kind="chat",
        content={"text": text},
        trigger=trigger,
        channel_type="cli",
        platform_id="local",
    )


def runner_db(layout: SessionLayout) -> SessionDB:
    return SessionDB(inbound_path=layout.inbound_db, outbound_path=layout.outbound_db)


def journal_mode(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        conn.close()


def test_each_db_lives_in_its_own_directory_and_uses_delete_journal(layout: SessionLayout) -> None:
    assert layout.inbound_db.parent.name == "inbound"
    assert layout.outbound_db.parent.name == "outbound"
    assert journal_mode(layout.inbound_db) == "delete"
    assert journal_mode(layout.outbound_db) == "delete"
    for leftover in ("-wal", "-shm"):
        assert not Path(f"{layout.inbound_db}{leftover}").exists()


def test_both_dbs_are_at_their_schema_heads_and_ensure_is_idempotent(
    store: SessionStore, layout: SessionLayout
) -> None:
    store.ensure("andy", "sess-1")
    store.prepare_outbound(layout)
    for path, file in (
        (layout.inbound_db, SessionFile.INBOUND),
        (layout.outbound_db, SessionFile.OUTBOUND),
    ):
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == head_version(file)
        finally:
            conn.close()
    assert store.heads() == (head_version(SessionFile.INBOUND), head_version(SessionFile.OUTBOUND))


def test_host_rows_get_even_increasing_seqs_and_reinserting_an_id_is_a_no_op(
    store: SessionStore, layout: SessionLayout
) -> None:
    seqs = store.insert_messages(layout, [chat("a"), chat("b"), chat("c")])
    assert seqs == [2, 4, 6]
    assert store.insert_messages(layout, [chat("b")]) == [4]


def test_runner_rows_get_odd_seqs_above_every_row_of_both_tables(
    store: SessionStore, layout: SessionLayout
) -> None:
    store.insert_messages(layout, [chat("a"), chat("b")])  # 2, 4
    db = runner_db(layout)
    first = db.send(OutboundMessage(kind="chat", content={"text": "x"}))
    assert first == 5
    store.insert_messages(layout, [chat("c")])  # host continues with even seqs: 6
    second = db.send(OutboundMessage(kind="chat", content={"text": "y"}))
    assert second == 7
    assert next_host_seq(None) == 2 and next_host_seq(7) == 8
    assert next_runner_seq(None) == 1 and next_runner_seq(8) == 9 and next_runner_seq(9) == 11


def test_parity_violations_are_rejected_by_the_schema(layout: SessionLayout) -> None:
    row = {"id": "x", "kind": "chat", "timestamp": "2026-01-01T00:00:00.000000Z", "content": "{}"}
    inbound = make_engine(layout.inbound_db)
    with pytest.raises(IntegrityError), inbound.begin() as conn:
        conn.execute(messages_in.insert().values(seq=3, **row))
    with pytest.raises(IntegrityError), inbound.begin() as conn:
        conn.execute(messages_in.insert().values(seq=0, **row))
    outbound = make_engine(layout.outbound_db)
    with pytest.raises(IntegrityError), outbound.begin() as conn:
        conn.execute(messages_out.insert().values(seq=4, **row))
    inbound.dispose()
    outbound.dispose()


def test_a_reader_created_before_a_write_sees_it_on_its_next_poll(
    store: SessionStore, layout: SessionLayout
) -> None:
    db = runner_db(layout)  # the runner's reader exists before the host writes
    assert db.pending(now="9999", include_on_wake=False) == []
    store.insert_messages(layout, [chat("late", "are you there?")])
    rows = db.pending(now="9999", include_on_wake=False)
    assert [r.text for r in rows] == ["are you there?"]


def test_a_write_through_the_read_only_reader_fails(layout: SessionLayout) -> None:
    with (
        read_inbound(layout.inbound_db) as conn,
        pytest.raises(sqlite3.OperationalError, match="readonly"),
    ):
        conn.execute("DELETE FROM messages_in")


def test_host_writes_take_the_write_lock_up_front(
    store: SessionStore, layout: SessionLayout
) -> None:
    """BEGIN IMMEDIATE: while the host's transaction is open, no other writer can start one."""
    with store.write(layout):
        other = sqlite3.connect(layout.inbound_db, timeout=0, isolation_level=None)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        finally:
            other.close()


def test_host_writes_close_their_connection(store: SessionStore, layout: SessionLayout) -> None:
    store.insert_messages(layout, [chat("a")])
    open_files = {os.path.realpath(fd) for fd in Path("/proc/self/fd").iterdir()}
    assert str(layout.inbound_db.resolve()) not in open_files


def test_concurrent_host_writes_to_one_session_keep_seqs_unique(
    store: SessionStore, layout: SessionLayout
) -> None:
    def burst(prefix: str) -> None:
        for i in range(20):
            store.insert_messages(layout, [chat(f"{prefix}-{i}")])

    threads = [threading.Thread(target=burst, args=(p,)) for p in "abc"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    conn = sqlite3.connect(layout.inbound_db)
    seqs = [r[0] for r in conn.execute("SELECT seq FROM messages_in ORDER BY seq")]
    conn.close()
    assert seqs == list(range(2, 2 * 60 + 1, 2))


def test_claims_hide_rows_from_the_next_poll_and_stale_claims_are_released(
    store: SessionStore, layout: SessionLayout
) -> None:
    store.insert_messages(layout, [chat("a"), chat("b")])
    db = runner_db(layout)
    db.claim(["a:x"])  # an unrelated id changes nothing
    db.claim(["a"])
    assert [r.id for r in db.pending(now="9999", include_on_wake=False)] == ["b"]
    assert db.clear_stale_claims() == 2
    assert [r.id for r in db.pending(now="9999", include_on_wake=False)] == ["a", "b"]


def test_acks_complete_host_rows_only_once_synced(
    store: SessionStore, layout: SessionLayout
) -> None:
    store.insert_messages(layout, [chat("a"), chat("b")])
    db = runner_db(layout)
    db.claim(["a", "b"])
    db.finish(["a"], [OutboundMessage(kind="chat", content={"text": "done"})])
    assert store.sync_acks(layout, {"a": "completed", "b": "processing"}) == 1
    conn = sqlite3.connect(layout.inbound_db)
    statuses = dict(conn.execute("SELECT id, status FROM messages_in"))
    conn.close()
    assert statuses == {"a": "completed", "b": "pending"}


def test_orphan_claims_are_cleared_by_the_host(store: SessionStore, layout: SessionLayout) -> None:
    store.insert_messages(layout, [chat("a")])
    runner_db(layout).claim(["a"])
    assert store.clear_orphan_claims(layout) == 1
    assert runner_db(layout).claimed_ids() == set()


def test_a_poll_skips_rows_this_runner_claimed_without_reading_outbound_db(
    store: SessionStore, layout: SessionLayout
) -> None:
    store.insert_messages(layout, [chat("a"), chat("b")])
    db = runner_db(layout)
    db.claim(["a"])
    db.finish(["b"], [])  # acked, not yet folded in by the host: still pending in inbound.db
    aside = layout.outbound_db.with_name("moved-away.db")
    layout.outbound_db.rename(aside)  # any read of outbound.db now fails
    try:
        assert db.pending(now="9999", include_on_wake=False) == []
        with pytest.raises(sqlite3.OperationalError):
            runner_db(layout).pending(now="9999", include_on_wake=False)  # a new runner reads
    finally:
        aside.rename(layout.outbound_db)
    assert runner_db(layout).pending(now="9999", include_on_wake=False) == []
    db.release(["a"])  # released: the row is the poll's again, looked up afresh
    assert [r.id for r in db.pending(now="9999", include_on_wake=False)] == ["a"]


def test_a_poll_reports_the_next_due_time_from_the_same_read(
    store: SessionStore, layout: SessionLayout
) -> None:
    later = InboundMessage(
        id="later", kind="task", content={"prompt": "p"}, process_after="2099-01-01T00:00:00Z"
    )
    store.insert_messages(layout, [chat("now"), later])
    view = runner_db(layout).poll(now="2026-01-01T00:00:00Z", include_on_wake=False)
    assert [r.id for r in view.rows] == ["now"]
    assert view.next_due_at == "2099-01-01T00:00:00Z"


def test_a_release_leaves_a_finished_ack_and_its_row_hidden(
    store: SessionStore, layout: SessionLayout
) -> None:
    store.insert_messages(layout, [chat("a"), chat("b")])
    db = runner_db(layout)
    db.claim(["a", "b"])
    db.finish(["a"], [])  # answered, not yet folded in: still pending in inbound.db
    db.release(["a", "b"])  # only processing claims are released
    assert [r.id for r in db.pending(now="9999", include_on_wake=False)] == ["b"]
    assert runner_db(layout).claimed_ids() == {"a"}
    assert [r.id for r in runner_db(layout).pending(now="9999", include_on_wake=False)] == ["b"]
