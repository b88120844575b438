"""The write worker's lanes: one session's queued calls share one commit, a failing call fails
alone, a lingering delivery record waits for company without holding a thread but is always
written, errors travel with their causes."""

from __future__ import annotations

import errno
import sqlite3
import threading
from pathlib import Path

import pytest

from nanoclaw.contract.dbwatch import change_signature
from nanoclaw.sessions import write_worker
from nanoclaw.sessions.inbound_rows import InboundMessage
from nanoclaw.sessions.store import SessionStore
from nanoclaw.sessions.write_protocol import RemoteError, WriteCall, WriteOp
from nanoclaw.sessions.write_worker import Answer, Lanes, run_batch
from nanoclaw.storage_errors import is_disk_full
from tests.helpers import until_sync

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def store(tmp_path: Path) -> SessionStore:
    return SessionStore(sessions_root=tmp_path / "sessions")


class Answers:
    """Collects the lanes' answers; ``wait(n)`` until n have arrived."""

    def __init__(self) -> None:
        self.got: list[Answer] = []
        self._changed = threading.Condition()

    def __call__(self, answer: Answer) -> None:
        with self._changed:
            self.got.append(answer)
            self._changed.notify_all()

    def wait(self, count: int) -> list[Answer]:
        """Far less than the tests' lingers: an answer that waited one out fails here."""
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.got) >= count, timeout=20)
            return list(self.got)


def _insert(
    call_id: int, db: Path, message_id: str, content: dict[str, object], *more: InboundMessage
) -> WriteCall:
    row = InboundMessage(id=message_id, kind="chat", content=content)
    return WriteCall(call_id, WriteOp.INSERT_MESSAGES, "s1", str(db), ([*more, row],), {})


def _record(
    call_id: int, db: Path, out_id: str, *, linger: bool = False, session: str = "s1"
) -> WriteCall:
    return WriteCall(
        call_id,
        WriteOp.RECORD_DELIVERY,
        session,
        str(db),
        (out_id,),
        {"status": "delivered"},
        linger,
    )


def _ids(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM messages_in ORDER BY seq")]


def _delivered(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT message_out_id FROM delivered")]


def _commits(db: Path) -> int:
    signature = change_signature(db)
    assert signature is not None
    return signature[1]


def test_a_batch_is_one_commit_and_a_failing_call_fails_alone(store: SessionStore) -> None:
    db = store.ensure("andy", "s1").inbound_db
    before = _commits(db)
    answers = run_batch(
        [
            _insert(1, db, "m1", {"text": "a"}),
            # Its first row is written before the second raises (json.dumps: TypeError):
            # the savepoint takes both back.
            _insert(
                2,
                db,
                "bad",
                {"not json": {1, 2}},
                InboundMessage(id="half", kind="chat", content={}),
            ),
            _record(3, db, "out-1"),
            _insert(4, db, "m2", {"text": "b"}),
        ]
    )
    assert [(call_id, ok) for call_id, ok, _ in answers] == [
        (1, True),
        (2, False),
        (3, True),
        (4, True),
    ]
    failed = answers[1][2]
    assert isinstance(failed, RemoteError)
    assert isinstance(failed.rebuild(), TypeError)
    assert _ids(db) == ["m1", "m2"]
    assert _delivered(db) == ["out-1"]
    assert _commits(db) == before + 1


def test_a_batch_whose_file_is_unusable_fails_every_call(store: SessionStore) -> None:
    db = store.ensure("andy", "s1").inbound_db
    db.write_bytes(b"not a database at all" * 200)
    answers = run_batch([_insert(1, db, "m1", {}), _record(2, db, "out-1")])
    assert [ok for _, ok, _ in answers] == [False, False]
    for _, _, error in answers:
        assert isinstance(error, RemoteError)
        assert isinstance(error.rebuild(), sqlite3.DatabaseError)


def test_a_transaction_sqlite_rolled_back_fails_every_call_with_the_real_error(
    store: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = store.ensure("andy", "s1").inbound_db
    real_apply = write_worker._apply

    def full_disk_on_m2(conn: sqlite3.Connection, call: WriteCall) -> object:
        if call.call_id == 2:  # as SQLite does on SQLITE_FULL or an I/O error mid-statement
            conn.execute("ROLLBACK")
            raise sqlite3.OperationalError("database or disk is full")
        return real_apply(conn, call)

    monkeypatch.setattr(write_worker, "_apply", full_disk_on_m2)
    answers = run_batch([_insert(1, db, "m1", {}), _insert(2, db, "m2", {}), _record(3, db, "o")])
    assert [ok for _, ok, _ in answers] == [False, False, False]
    for _, _, error in answers:
        assert isinstance(error, RemoteError)
        assert error.text == "database or disk is full"  # not "no such savepoint"
    assert _ids(db) == [] and _delivered(db) == []


def test_a_lingering_record_shares_the_next_inserts_commit(store: SessionStore) -> None:
    db = store.ensure("andy", "s1").inbound_db
    answers = Answers()
    lanes = Lanes(reply=answers, linger_s=60.0)  # longer than the test: only company ends it
    try:
        before = _commits(db)
        lanes.submit(_record(1, db, "out-1", linger=True))
        until_sync(lambda: lanes.parked == 1)
        lanes.submit(_insert(2, db, "m1", {"text": "next"}))
        assert sorted((i, ok) for i, ok, _ in answers.wait(2)) == [(1, True), (2, True)]
    finally:
        lanes.close()
    assert _delivered(db) == ["out-1"] and _ids(db) == ["m1"]
    assert _commits(db) == before + 1  # one transaction for both


def test_a_lingering_record_alone_is_still_written(store: SessionStore) -> None:
    db = store.ensure("andy", "s1").inbound_db
    answers = Answers()
    lanes = Lanes(reply=answers, linger_s=0.01)
    try:
        lanes.submit(_record(1, db, "out-1", linger=True))
        assert answers.wait(1) == [(1, True, None)]
    finally:
        lanes.close()
    assert _delivered(db) == ["out-1"]


def test_closing_does_not_wait_out_a_linger(store: SessionStore) -> None:
    db = store.ensure("andy", "s1").inbound_db
    answers = Answers()
    lanes = Lanes(reply=answers, linger_s=3600.0)
    lanes.submit(_record(1, db, "out-1", linger=True))
    lanes.close()  # returns once the record is written, not an hour later
    assert answers.got == [(1, True, None)]
    assert _delivered(db) == ["out-1"]


def test_a_parked_session_holds_no_thread(store: SessionStore, tmp_path: Path) -> None:
    parked_db = store.ensure("andy", "s1").inbound_db
    other_db = store.ensure("andy", "s2").inbound_db
    answers = Answers()
    lanes = Lanes(reply=answers, workers=1, linger_s=60.0)
    try:
        lanes.submit(_record(1, parked_db, "out-1", linger=True))
        until_sync(lambda: lanes.parked == 1)
        lanes.submit(_record(2, other_db, "out-2", session="s2"))
        assert answers.wait(1) == [(2, True, None)]  # the only thread was free for s2
        assert lanes.parked == 1 and _delivered(parked_db) == []
    finally:
        lanes.close()
    assert answers.got == [(2, True, None), (1, True, None)]


def test_a_lane_that_fails_answers_its_calls_and_runs_the_next_ones(
    store: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = store.ensure("andy", "s1").inbound_db
    answers = Answers()
    broken = threading.Event()
    broken.set()
    real_run = write_worker.run_batch

    def fails_once(calls: list[WriteCall]) -> list[Answer]:
        if broken.is_set():
            broken.clear()
            raise RuntimeError("a bug in the lane")
        return real_run(calls)

    monkeypatch.setattr(write_worker, "run_batch", fails_once)
    lanes = Lanes(reply=answers)
    try:
        lanes.submit(_record(1, db, "out-1"))
        ((call_id, ok, error),) = answers.wait(1)
        assert (call_id, ok) == (1, False) and isinstance(error, RemoteError)
        assert error.text == "a bug in the lane"
        lanes.submit(_record(2, db, "out-2"))  # the session's lane is not stuck
        assert answers.wait(2)[1] == (2, True, None)
    finally:
        lanes.close()
    assert _delivered(db) == ["out-2"]


def test_an_error_travels_with_its_cause() -> None:
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as full:
            raise RuntimeError("the attachment could not be saved") from full
    except RuntimeError as exc:
        rebuilt = RemoteError.of(exc).rebuild()
    assert isinstance(rebuilt, RuntimeError)
    assert isinstance(rebuilt.__cause__, OSError) and rebuilt.__cause__.errno == errno.ENOSPC
    assert is_disk_full(rebuilt)
    assert not is_disk_full(RemoteError.of(RuntimeError("other")).rebuild())
