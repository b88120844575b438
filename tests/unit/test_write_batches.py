"""The write worker's lanes: one session's queued calls share one commit, a failing call fails
alone, a lingering delivery record waits for company but is always written."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from nanoclaw.contract.dbwatch import change_signature
from nanoclaw.sessions.inbound_rows import InboundMessage
from nanoclaw.sessions.store import SessionStore
from nanoclaw.sessions.write_protocol import RemoteError, WriteCall, WriteOp
from nanoclaw.sessions.write_worker import Answer, Lanes, run_batch

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
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.got) >= count, timeout=20)
            return list(self.got)


def _insert(call_id: int, db: Path, message_id: str, content: dict[str, object]) -> WriteCall:
    row = InboundMessage(id=message_id, kind="chat", content=content)
    return WriteCall(call_id, WriteOp.INSERT_MESSAGES, "s1", str(db), ([row],), {})


def _record(call_id: int, db: Path, out_id: str, *, linger: bool = False) -> WriteCall:
    return WriteCall(
        call_id, WriteOp.RECORD_DELIVERY, "s1", str(db), (out_id,), {"status": "delivered"}, linger
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
            _insert(2, db, "bad", {"not json": {1, 2}}),  # json.dumps raises TypeError
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


def test_a_lingering_record_shares_the_next_inserts_commit(store: SessionStore) -> None:
    db = store.ensure("andy", "s1").inbound_db
    answers = Answers()
    lanes = Lanes(reply=answers, linger_s=10.0)  # longer than the test: only company ends it
    try:
        before = _commits(db)
        lanes.submit(_record(1, db, "out-1", linger=True))
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
