"""Ack sync: read what changed since the session's watermark, write only a changed status,
report turn-done once, keep bounded state, and the runner prunes acks the host has folded in."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from agent_runner.db import OutboundMessage
from sqlalchemy import update

from nanoclaw.contract import sessiondb
from nanoclaw.contract.actions import ActionStatus
from nanoclaw.contract.dbwatch import change_signature
from nanoclaw.contract.layout import SessionLayout
from nanoclaw.contract.sessiondb import AckRow, OutboundRow
from nanoclaw.contract.timeutil import to_iso, utc_now
from nanoclaw.db.models import SessionRow
from nanoclaw.delivery import loop as delivery_loop
from nanoclaw.delivery.acks import FAILED_KEPT, REPORTED_KEPT, AckTracker
from nanoclaw.delivery.actions import ActionResult
from nanoclaw.sessions.failed import retry_failed
from nanoclaw.sessions.schema import messages_in
from nanoclaw.sessions.store import InboundMessage
from nanoclaw.settings import Settings
from tests.helpers import until
from tests.unit.test_delivery import Rig


@pytest.fixture
def rig(tmp_path: Path, settings: Settings) -> Rig:
    return Rig(tmp_path, settings)


def chat(mid: str) -> InboundMessage:
    return InboundMessage(id=mid, kind="chat", content={"text": "hi"}, channel_type="fake")


def statuses(rig: Rig) -> dict[str, str]:
    conn = sqlite3.connect(rig.layout.inbound_db)
    try:
        return dict(conn.execute("SELECT id, status FROM messages_in"))
    finally:
        conn.close()


class Commits:
    """Committed write transactions on a session DB, by its header's file change counter."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.base = self._counter()

    def _counter(self) -> int:
        signature = change_signature(self.path)
        assert signature is not None
        return signature[1]

    def reset(self) -> None:
        self.base = self._counter()

    def count(self) -> int:
        return self._counter() - self.base


async def test_acks_are_synced_once_and_an_unchanged_pass_writes_nothing(rig: Rig) -> None:
    commits = Commits(rig.layout.inbound_db)  # every committed write moves the change counter
    done: list[frozenset[str]] = []

    async def listener(session_id: str, ids: frozenset[str]) -> None:
        done.append(ids)

    rig.loop.on_turn_done(listener)
    rig.store.insert_messages(rig.layout, [chat("a"), chat("b")])
    rig.runner.claim(["a", "b"])
    commits.reset()
    await rig.loop.drain(rig.session.id)
    assert commits.count() == 0  # only processing claims: nothing to fold in
    rig.runner.finish(["a"], [])
    await rig.loop.drain(rig.session.id)
    assert commits.count() == 1 and statuses(rig) == {"a": "completed", "b": "pending"}
    assert done == [frozenset({"a"})]
    await rig.loop.drain(rig.session.id)  # the ack is re-read inside the margin, unchanged
    await rig.loop.drain(rig.session.id)
    assert commits.count() == 1 and done == [frozenset({"a"})]
    rig.runner.finish(["b"], [])
    await rig.loop.drain(rig.session.id)
    assert commits.count() == 2 and statuses(rig) == {"a": "completed", "b": "completed"}
    assert done == [frozenset({"a"}), frozenset({"b"})]


async def test_the_runner_prunes_acks_the_host_folded_in(rig: Rig) -> None:
    rig.store.insert_messages(rig.layout, [chat("a"), chat("b")])
    rig.runner.claim(["a"])
    rig.runner.finish(["a"], [])
    rig.runner.claim(["b"])  # a's ack is finished but not yet folded in: it stays
    assert rig.runner.claimed_ids() == {"a", "b"}
    await rig.loop.drain(rig.session.id)
    rig.runner.finish(["b"], [])
    rig.store.insert_messages(rig.layout, [chat("c")])
    rig.runner.claim(["c"])  # a is completed in messages_in now: its ack goes
    assert rig.runner.claimed_ids() == {"b", "c"}
    assert [r.id for r in rig.runner.pending(now="9999", include_on_wake=True)] == []


def test_the_tracker_reads_from_its_watermark_and_keeps_bounded_state() -> None:
    tracker = AckTracker()
    assert tracker.since("s") is None
    first = [AckRow("a", "processing", "2030-01-01T00:00:00.000000Z")]
    assert tracker.changed("s", first) == {"a": "processing"}
    assert tracker.since("s") == "2029-12-31T23:59:58.000000Z"
    again = [AckRow("a", "completed", "2030-01-01T00:00:10.000000Z")]
    assert tracker.changed("s", again) == {"a": "completed"}
    assert tracker.changed("s", again) == {}
    assert tracker.owed("s") == {"a"}
    assert tracker.take_unreported("s", {"a"}) == {"a"}
    assert tracker.owed("s") == frozenset() and tracker.take_unreported("s", {"a"}) == set()
    many = {f"m{i}" for i in range(REPORTED_KEPT * 3)}
    tracker.take_unreported("s", many)
    assert len(tracker._sessions["s"].reported) == REPORTED_KEPT
    later = [AckRow(f"x{i}", "completed", f"2030-01-01T00:{i:02d}:00.000000Z") for i in range(50)]
    tracker.changed("s", later)
    assert len(tracker._sessions["s"].seen) == 1  # only rows inside the re-read margin


def test_the_tracker_holds_folds_and_failed_verdicts_per_session() -> None:
    tracker = AckTracker()
    tracker.hold("s", ["a", "b"])
    tracker.hold("s", ["b", "c"])  # an id held twice is folded once
    assert tracker.take_held("s") == ["a", "b", "c"]
    assert tracker.take_held("s") == [] and tracker.take_held("other") == []
    done = [
        AckRow("a", "completed", "2030-01-01T00:00:00.000000Z"),
        AckRow("b", "failed", "2030-01-01T00:00:01.000000Z"),
    ]
    tracker.changed("s", done)
    tracker.note_failed("s", {"z"})  # the sweep gave up on it: no ack says so
    assert tracker.failed_among("s", frozenset({"a", "b", "z"})) == {"b", "z"}
    assert tracker.failed_among("other", frozenset({"b"})) == frozenset()
    tracker.note_failed("s", {f"f{i}" for i in range(FAILED_KEPT * 2)})
    assert len(tracker._sessions["s"].failed) == FAILED_KEPT


def test_a_failed_verdict_is_kept_until_its_turn_done_is_reported() -> None:
    tracker = AckTracker()
    tracker.changed("s", [AckRow("b", "failed", "2030-01-01T00:00:01.000000Z")])
    reported = tracker.take_unreported("s", set(tracker.owed("s")))
    assert reported == {"b"}
    assert tracker.failed_among("s", reported) == {"b"}  # what the listeners are told
    tracker.drop_verdicts("s", reported)
    assert tracker.failed_among("s", frozenset({"b"})) == frozenset()
    # A verdict seen again after the report (a rewritten ack, the sweep) is not kept either.
    tracker.changed("s", [AckRow("b", "completed", "2030-01-01T00:00:02.000000Z")])
    tracker.changed("s", [AckRow("b", "failed", "2030-01-01T00:00:03.000000Z")])
    tracker.note_failed("s", {"b"})
    assert tracker._sessions["s"].failed == {}
    assert tracker.take_unreported("s", set(tracker.owed("s"))) == frozenset()


def reply_to_room(text: str, *, deliver_after: str | None = None) -> OutboundMessage:
    return OutboundMessage(
        kind="chat",
        content={"text": text},
        channel_type="fake",
        platform_id="room",
        deliver_after=deliver_after,
    )


async def play_turns(rig: Rig, turns: list[tuple[str, list[OutboundMessage]]]) -> None:
    """Each inbound message claimed, finished with its replies and drained, in turn."""
    for mid, replies in turns:
        rig.store.insert_messages(rig.layout, [chat(mid)])
        rig.runner.claim([mid])
        rig.runner.finish([mid], replies)
        await rig.loop.drain(rig.session.id)


async def drain_until_sent(rig: Rig, count: int, *, within_s: float = 15.0) -> None:
    """Drain again until the adapter has sent ``count`` messages (rows waiting for their time)."""
    deadline = asyncio.get_running_loop().time() + within_s
    while len(rig.adapter.sent) < count:
        assert asyncio.get_running_loop().time() < deadline, "the waiting rows were never sent"
        await asyncio.sleep(0.05)
        await rig.loop.drain(rig.session.id)


async def test_a_turns_ack_is_folded_in_by_its_replys_delivery_record(rig: Rig) -> None:
    commits = Commits(rig.layout.inbound_db)
    rig.store.insert_messages(rig.layout, [chat("a")])
    rig.runner.claim(["a"])
    await rig.loop.drain(rig.session.id)
    commits.reset()
    rig.adapter.stalled.add("room")  # the send hangs until released
    rig.runner.finish(["a"], [reply_to_room("hi back")])
    drain = asyncio.create_task(rig.loop.drain(rig.session.id))
    await until(lambda: bool(rig.adapter.in_flight))
    # The reply's path writes nothing before its send: the row is still pending here.
    assert commits.count() == 0 and statuses(rig) == {"a": "pending"}
    rig.adapter.release()
    await drain
    # One transaction after it: the delivery record with the ack folded in.
    assert commits.count() == 1 and statuses(rig) == {"a": "completed"}
    assert [s.payload.text for s in rig.adapter.sent] == ["hi back"]
    assert [status for status, _ in rig.delivered().values()] == ["delivered"]


async def test_an_ack_whose_record_could_not_be_written_is_folded_in_later(rig: Rig) -> None:
    rig.store.insert_messages(rig.layout, [chat("a")])
    rig.runner.claim(["a"])
    await rig.loop.drain(rig.session.id)
    rig.adapter.stalled.add("room")
    rig.runner.finish(["a"], [reply_to_room("hi back")])
    drain = asyncio.create_task(rig.loop.drain(rig.session.id))
    await until(lambda: bool(rig.adapter.in_flight))
    blocker = sqlite3.connect(rig.layout.inbound_db, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds inbound.db past the timeout
        rig.adapter.release()
        assert await drain == 0  # the record failed: the drain is reported and retried
        assert statuses(rig) == {"a": "pending"} and rig.delivered() == {}
    finally:
        blocker.rollback()
        blocker.close()
    await rig.loop.drain(rig.session.id)
    # Recorded now, the ack with it, and the reply was not sent twice.
    assert statuses(rig) == {"a": "completed"}
    assert [status for status, _ in rig.delivered().values()] == ["delivered"]
    assert [s.payload.text for s in rig.adapter.sent] == ["hi back"]


@pytest.mark.parametrize("verdict", ["completed", "failed"])
async def test_acks_a_failed_pass_held_are_folded_in_by_the_next(rig: Rig, verdict: str) -> None:
    done: list[frozenset[str]] = []
    failed: list[frozenset[str]] = []

    async def listener(session_id: str, ids: frozenset[str]) -> None:
        done.append(ids)
        failed.append(rig.loop.failed_among(session_id, ids))

    rig.loop.on_turn_done(listener)
    rig.store.insert_messages(rig.layout, [chat("a")])
    rig.runner.claim(["a"])
    await rig.loop.drain(rig.session.id)
    rig.runner.finish(["a"], [], status=verdict)  # nothing to deliver: the pass folds it in
    blocker = sqlite3.connect(rig.layout.inbound_db, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # its fold cannot be written within the timeout
        assert await rig.loop.drain(rig.session.id) == 0
        assert statuses(rig) == {"a": "pending"} and done == []
    finally:
        blocker.rollback()
        blocker.close()
    # The tracker had seen the ack already; the failed pass kept it (and its verdict).
    await rig.loop.drain(rig.session.id)
    assert statuses(rig) == {"a": "completed"} and done == [frozenset({"a"})]
    assert failed == [frozenset({"a"}) if verdict == "failed" else frozenset()]
    # Told once; the verdict is not kept after its report (a long-lived host would pile them up).
    assert rig.loop.failed_among(rig.session.id, frozenset({"a"})) == frozenset()


async def test_a_reply_to_deliver_later_holds_back_no_turn_done(rig: Rig) -> None:
    done: list[frozenset[str]] = []

    async def listener(_session_id: str, ids: frozenset[str]) -> None:
        done.append(ids)

    rig.loop.on_turn_done(listener)
    later = reply_to_room("tomorrow", deliver_after=to_iso(utc_now() + timedelta(days=1)))
    await play_turns(rig, [("a", [later, reply_to_room("now")]), ("b", [reply_to_room("b too")])])
    # The later reply waits (and holds the floor); the turns it came from are done.
    assert [s.payload.text for s in rig.adapter.sent] == ["now", "b too"]
    assert done == [frozenset({"a"}), frozenset({"b"})]


async def test_rows_behind_a_row_to_deliver_later_are_not_read_again(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[list[str]] = []
    reader = rig.loop.reader
    original = reader.outbound_rows

    def recording(layout: SessionLayout, **kwargs: Any) -> list[OutboundRow]:
        rows = original(layout, **kwargs)
        read.append([str(r.content["text"]) for r in rows])
        return rows

    monkeypatch.setattr(reader, "outbound_rows", recording)
    later = reply_to_room("soon", deliver_after=to_iso(utc_now() + timedelta(seconds=1)))
    turns = [("a", [later, reply_to_room("a")]), ("b", [reply_to_room("b")])]
    await play_turns(rig, [*turns, *((m, [reply_to_room(m)]) for m in "cd")])
    # Each pass reads the waiting row and what is new, not every row since it.
    assert read == [["soon", "a"], ["soon", "b"], ["soon", "c"], ["soon", "d"]]
    assert [s.payload.text for s in rig.adapter.sent] == ["a", "b", "c", "d"]
    await drain_until_sent(rig, 5)
    assert rig.adapter.sent[-1].payload.text == "soon"
    await rig.loop.drain(rig.session.id)  # nothing is left open: nothing is read again
    assert read[-1] == []


async def test_past_the_open_rows_bound_a_pass_reads_from_the_floor_and_sends_nothing_twice(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery_loop, "OPEN_ROWS_READ_BY_SEQ", 1)
    soon = to_iso(utc_now() + timedelta(seconds=1))
    first, second = (reply_to_room(f"soon {n}", deliver_after=soon) for n in (1, 2))
    turns = [("a", [first, reply_to_room("a")]), ("b", [second])]
    await play_turns(rig, [*turns, *((m, [reply_to_room(m)]) for m in "cd")])
    assert [s.payload.text for s in rig.adapter.sent] == ["a", "c", "d"]
    await drain_until_sent(rig, 5)
    assert [s.payload.text for s in rig.adapter.sent] == ["a", "c", "d", "soon 1", "soon 2"]


def record_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The session DBs every fresh read-only connection opens, in order."""
    opened: list[Path] = []
    real = sessiondb.reading

    @contextmanager
    def recording(path: Path, *, confined: bool = False) -> Iterator[sqlite3.Connection]:
        opened.append(path)
        with real(path, confined=confined) as conn:
            yield conn

    monkeypatch.setattr(sessiondb, "reading", recording)
    return opened


def record_origins(rig: Rig) -> list[str | None]:
    """The origin each ``probe`` action request had when it ran, in order."""
    decided: list[str | None] = []

    async def probe(session: SessionRow, row: OutboundRow) -> ActionResult:
        decided.append(rig.loop.origins.origin(session.id, row.id))
        return ActionResult(ActionStatus.OK, "seen")

    rig.actions.register("probe", probe)
    return decided


def said_by(mid: str, sender: str) -> InboundMessage:
    return InboundMessage(
        id=mid, kind="chat", content={"text": "hi", "sender_id": sender}, channel_type="fake"
    )


@pytest.mark.parametrize(("others", "origin"), [([], "alice"), (["bob"], None)])
async def test_a_pass_after_a_claim_alone_opens_no_inbound_db_and_origins_still_hold(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, others: list[str], origin: str | None
) -> None:
    decided = record_origins(rig)
    rig.store.insert_messages(rig.layout, [said_by("a", "alice")])
    await rig.loop.drain(rig.session.id)  # observes: a is unfinished
    opened = record_reads(monkeypatch)
    rig.runner.claim(["a"])
    await rig.loop.drain(rig.session.id)
    assert opened == [rig.layout.outbound_db]  # nothing to fold, no row: inbound.db unread
    rig.store.insert_messages(rig.layout, [said_by(f"o{i}", who) for i, who in enumerate(others)])
    rig.runner.send(OutboundMessage(kind="system", content={"action": "probe"}, in_reply_to="a"))
    opened.clear()
    await rig.loop.drain(rig.session.id)
    assert rig.layout.inbound_db in opened
    # Decided against the last observation: a's sender alone, or nobody once bob's row may
    # have reached the turn too.
    assert decided == [origin]


async def test_a_row_retried_after_it_was_seen_failed_counts_for_a_later_request(
    rig: Rig,
) -> None:
    """An admin's retry makes a row seen failed pending again: it may reach the next turn, so
    a request of that turn names nobody when the row is another user's."""
    decided = record_origins(rig)
    rig.store.insert_messages(rig.layout, [said_by("x", "bob")])
    rig.runner.claim(["x"])
    rig.runner.finish(["x"], [], status="failed")
    await rig.loop.drain(rig.session.id)
    with rig.store.write(rig.layout) as conn:  # given up on, as the sweep does after its tries
        conn.execute(update(messages_in).values(status="failed"))
    await rig.loop.drain(rig.session.id)  # the look: x finished
    assert statuses(rig) == {"x": "failed"}
    assert retry_failed(rig.store, rig.layout, "x")
    rig.store.insert_messages(rig.layout, [said_by("a", "alice")])
    rig.runner.claim(["x", "a"])
    await rig.loop.drain(rig.session.id)
    rig.runner.send(OutboundMessage(kind="system", content={"action": "probe"}, in_reply_to="a"))
    await rig.loop.drain(rig.session.id)
    assert decided == [None]
