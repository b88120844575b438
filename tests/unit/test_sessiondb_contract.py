"""The session-DB contract: versioned migrations (fresh, adopted from Alembic, too new, atomic),
the I/O rules of DESIGN §2 and the one content parser, on real SQLite files."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import pytest
from agent_runner.db import SessionDB

from nanoclaw.contract import sessiondb
from nanoclaw.contract.layout import SessionLayout
from nanoclaw.contract.sessiondb import SchemaTooNewError, SessionFile, head_version
from nanoclaw.errors import SandboxFileError, SchemaVersionError
from nanoclaw.sessions.outbound_reader import SessionReader
from nanoclaw.sessions.store import SessionStore
from tests.conftest import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "sessiondb"
FILES = (SessionFile.INBOUND, SessionFile.OUTBOUND)


def load_fixture(path: Path, name: str) -> None:
    """A file as NanoClaw's Alembic environments left it (SQL dumped from today's code)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    try:
        conn.executescript((FIXTURES / name).read_text())
    finally:
        conn.close()


def tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()


def version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def columns(path: Path, table: str) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
    finally:
        conn.close()


@pytest.mark.parametrize("file", FILES)
def test_a_new_file_gets_every_step_and_a_second_migrate_is_a_no_op(
    tmp_path: Path, file: SessionFile
) -> None:
    path = tmp_path / f"{file.value}.db"
    assert sessiondb.migrate(path, file) == head_version(file) == len(sessiondb.STEPS[file])
    assert version(path) == head_version(file)
    assert "alembic_version" not in tables(path)
    before = path.stat().st_mtime_ns
    assert sessiondb.migrate(path, file) == head_version(file)
    assert path.stat().st_mtime_ns == before  # nothing written
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()


def schema(path: Path) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT type, name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize("file", FILES)
def test_a_new_host_side_file_is_the_head_image_with_the_schema_every_step_gives(
    tmp_path: Path, file: SessionFile
) -> None:
    stepwise = tmp_path / "stepwise" / "sub" / f"{file.value}.db"
    stepwise.parent.mkdir(parents=True)
    sessiondb.migrate(stepwise, file)  # the runner's way: by path, every step's DDL
    written = tmp_path / "session" / "sub" / f"{file.value}.db"
    written.parent.mkdir(parents=True)
    assert sessiondb.migrate(written, file, confined=True) == head_version(file)
    assert written.read_bytes() == sessiondb.head_image(file)
    assert [p.name for p in written.parent.iterdir()] == [written.name]  # no temporary left
    assert schema(written) == schema(stepwise)
    assert version(written) == head_version(file)
    conn = sqlite3.connect(written)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    finally:
        conn.close()
    # A planted link is an existing entry: never replaced, never followed (the probe refuses it).
    planted = tmp_path / "planted" / "sub" / f"{file.value}.db"
    planted.parent.mkdir(parents=True)
    target = tmp_path / "elsewhere.db"
    planted.symlink_to(target)
    with pytest.raises(SandboxFileError):
        sessiondb.migrate(planted, file, confined=True)
    assert planted.is_symlink() and not target.exists()
    # An existing file is never replaced by the image: it is opened and migrated as before.
    before = written.stat().st_ino, written.stat().st_mtime_ns
    sessiondb.migrate(written, file, confined=True)
    assert (written.stat().st_ino, written.stat().st_mtime_ns) == before


@pytest.mark.parametrize("revision", ["0001", "0002"])
def test_files_stamped_by_the_old_alembic_environments_upgrade_in_place(
    tmp_path: Path, revision: str
) -> None:
    """A session made by the code before the contract: both files, with their rows."""
    layout = SessionLayout(tmp_path / "sessions" / "andy" / "sess-old")
    load_fixture(layout.inbound_db, f"alembic-{revision}-inbound.sql")
    load_fixture(layout.outbound_db, f"alembic-{revision}-outbound.sql")
    assert version(layout.inbound_db) == 0 and "alembic_version" in tables(layout.inbound_db)

    store = SessionStore(sessions_root=tmp_path / "sessions")
    assert store.ensure("andy", "sess-old") == layout  # the host's first open migrates it
    store.prepare_outbound(layout)

    for path, file in (
        (layout.inbound_db, SessionFile.INBOUND),
        (layout.outbound_db, SessionFile.OUTBOUND),
    ):
        assert version(path) == head_version(file)
        assert "alembic_version" not in tables(path)
    assert {"recurrence_tz", "catch_up"} <= set(columns(layout.inbound_db, "messages_in"))
    assert {"transcript", "usage"} <= tables(layout.outbound_db)
    # The runner accepts the versions the host announces, and the old rows are all there.
    runner = SessionDB(inbound_path=layout.inbound_db, outbound_path=layout.outbound_db)
    runner.check_schema(inbound=store.heads()[0], outbound=store.heads()[1])
    row = runner.row_by_id("m-1")
    assert row is not None and row.id == "m-1" and row.seq == 2
    reader = SessionReader(engines=store.engines)
    if revision == "0002":
        assert row.status == "pending" and row.text == "hello from before"
        assert reader.acks(layout) == {"m-1": "completed"}
        (out,) = reader.outbound_rows(layout)
        assert (out.id, out.seq, out.content) == ("out-1", 3, {"text": "hi"})
        assert reader.deliveries(layout)["out-1"].platform_message_id == "p-1"
    else:
        assert row.text == "from the first schema"
        assert reader.acks(layout) == {"m-1": "processing"}


@pytest.mark.parametrize("file", FILES)
def test_a_file_newer_than_this_code_is_refused_and_left_untouched(
    tmp_path: Path, file: SessionFile
) -> None:
    path = tmp_path / f"{file.value}.db"
    sessiondb.migrate(path, file)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={head_version(file) + 1}")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(SchemaTooNewError, match="newer than this NanoClaw") as info:
        sessiondb.migrate(path, file)
    assert info.value.found == str(head_version(file) + 1)
    assert info.value.path == str(path)
    assert path.read_bytes() == before


def test_the_runner_refuses_versions_other_than_the_announced_ones(tmp_path: Path) -> None:
    store = SessionStore(sessions_root=tmp_path)
    layout = store.ensure("andy", "s")
    store.prepare_outbound(layout)
    runner = SessionDB(inbound_path=layout.inbound_db, outbound_path=layout.outbound_db)
    inbound, outbound = store.heads()
    runner.check_schema(inbound=inbound, outbound=outbound)
    with pytest.raises(SchemaVersionError, match="outbound"):
        runner.check_schema(inbound=inbound, outbound=outbound + 1)


def test_an_unknown_alembic_revision_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "inbound.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
    conn.execute("INSERT INTO alembic_version VALUES ('9999_someone_else')")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaVersionError, match="9999_someone_else"):
        sessiondb.migrate(path, SessionFile.INBOUND)
    assert version(path) == 0


def test_a_failing_step_leaves_the_file_at_its_previous_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "inbound.db"
    steps = sessiondb.STEPS[SessionFile.INBOUND]
    monkeypatch.setitem(sessiondb.STEPS, SessionFile.INBOUND, steps[:1])
    sessiondb.migrate(path, SessionFile.INBOUND)
    assert version(path) == 1
    broken = ("ALTER TABLE messages_in ADD COLUMN ok_column TEXT", "THIS IS NOT SQL")
    monkeypatch.setitem(sessiondb.STEPS, SessionFile.INBOUND, (*steps[:1], broken))
    with pytest.raises(sqlite3.OperationalError):
        sessiondb.migrate(path, SessionFile.INBOUND)
    assert version(path) == 1
    assert "ok_column" not in columns(path, "messages_in")  # the whole step rolled back


def test_concurrent_first_opens_migrate_once(tmp_path: Path) -> None:
    path = tmp_path / "inbound.db"
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            sessiondb.migrate(path, SessionFile.INBOUND)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert version(path) == head_version(SessionFile.INBOUND)


def test_writes_take_the_lock_up_front_and_close_and_reads_cannot_write(tmp_path: Path) -> None:
    path = tmp_path / "outbound.db"
    sessiondb.migrate(path, SessionFile.OUTBOUND)
    with sessiondb.writing(path) as conn:
        assert conn.in_transaction and conn.isolation_level is None
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == sessiondb.BUSY_TIMEOUT_MS
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()
        conn.execute("INSERT INTO session_state VALUES ('k', 'v')")
    open_files = {os.path.realpath(fd) for fd in Path("/proc/self/fd").iterdir()}
    assert str(path.resolve()) not in open_files
    with sessiondb.reading(path) as conn:
        assert conn.execute("PRAGMA mmap_size").fetchone()[0] == 0
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == sessiondb.BUSY_TIMEOUT_MS
        assert conn.execute("SELECT value FROM session_state").fetchone() == ("v",)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("DELETE FROM session_state")
    with pytest.raises(ValueError), sessiondb.writing(path) as conn:
        conn.execute("INSERT INTO session_state VALUES ('k2', 'v')")
        raise ValueError("rolled back")
    with sessiondb.reading(path) as conn:
        assert conn.execute("SELECT count(*) FROM session_state").fetchone() == (1,)


def test_the_host_side_open_is_probed(tmp_path: Path) -> None:
    """A DB name the sandbox swapped for a symlink is refused, never followed."""
    layout = SessionLayout(tmp_path / "s")
    (layout.root / "outbound").mkdir(parents=True)
    target = tmp_path / "elsewhere.db"
    sessiondb.migrate(target, SessionFile.OUTBOUND)
    layout.outbound_db.symlink_to(target)
    with pytest.raises(Exception, match=r"link|symlink|ELOOP|loop"):
        sessiondb.connect(layout.outbound_db, readonly=True, confined=True)
    sessiondb.connect(target, readonly=True).close()  # the positive control opens by path
    probed = sessiondb.connect(
        tmp_path / "s" / "outbound" / "real.db", readonly=False, confined=True
    )
    try:
        assert probed.execute("PRAGMA busy_timeout").fetchone()[0] == sessiondb.BUSY_TIMEOUT_MS
    finally:
        probed.close()


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ('{"text": "hi", "n": 1}', {"text": "hi", "n": 1}),
        ('["a"]', {"text": "['a']"}),
        ("not json", {"text": "not json"}),
        (None, {"text": ""}),
    ],
)
def test_one_content_parser(raw: object, parsed: dict[str, object]) -> None:
    assert sessiondb.parse_content(raw) == parsed


@pytest.mark.parametrize(
    ("file", "query"),
    [
        # the runner's pending scan and the host's look-up of unfinished rows (delivery.origin)
        (SessionFile.INBOUND, "SELECT id FROM messages_in WHERE status = 'pending'"),
        (SessionFile.INBOUND, "SELECT id FROM messages_in WHERE status IN ('paused', 'pending')"),
        # the host's ack read since its watermark (delivery.acks)
        (SessionFile.OUTBOUND, "SELECT * FROM processing_ack WHERE status_changed >= 'x'"),
    ],
)
def test_the_per_pass_filters_are_answered_by_an_index_not_a_scan_of_the_history(
    tmp_path: Path, file: SessionFile, query: str
) -> None:
    path = tmp_path / f"{file.value}.db"
    sessiondb.migrate(path, file)
    conn = sqlite3.connect(path)
    try:
        plan = " ".join(str(r[-1]) for r in conn.execute(f"EXPLAIN QUERY PLAN {query}"))
    finally:
        conn.close()
    assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, plan


def test_a_seed_commits_with_the_schema_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "inbound.db"

    def failing_seed(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO destinations (name, type) VALUES ('a', 'agent')")
        raise RuntimeError("seed failed")

    with pytest.raises(RuntimeError, match="seed failed"):
        sessiondb.migrate(path, SessionFile.INBOUND, seed=failing_seed)
    assert version(path) == 0 and "destinations" not in tables(path)

    def seed_a(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO destinations (name, type) VALUES ('a', 'agent')")

    assert sessiondb.migrate(path, SessionFile.INBOUND, seed=seed_a) == head_version(
        SessionFile.INBOUND
    )

    # At head already, a seed still runs (in a transaction of its own).
    def seed_b(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO destinations (name, type) VALUES ('b', 'agent')")

    sessiondb.migrate(path, SessionFile.INBOUND, seed=seed_b)
    conn = sqlite3.connect(path)
    try:
        assert [r[0] for r in conn.execute("SELECT name FROM destinations ORDER BY name")] == [
            "a",
            "b",
        ]
    finally:
        conn.close()


def test_a_write_that_sqlite_rolled_back_itself_raises_its_own_error(tmp_path: Path) -> None:
    # A full database makes SQLite roll the transaction back on its own; the helper's
    # ROLLBACK must not replace that error with "no transaction is active".
    path = tmp_path / "inbound.db"
    with sessiondb.writing(path) as conn:
        conn.execute("CREATE TABLE t (a)")
    with pytest.raises(sqlite3.OperationalError, match="full"), sessiondb.writing(path) as conn:
        conn.execute("PRAGMA max_page_count=3")
        conn.execute("INSERT INTO t VALUES (randomblob(100000))")
    with sessiondb.writing(path) as conn:  # the file is usable afterwards
        conn.execute("INSERT INTO t VALUES (1)")
