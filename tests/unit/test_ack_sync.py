"""Ack sync: read what changed since the session's watermark, write only a changed status,
report turn-done once, and the runner prunes acks the host has folded in."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from nanoclaw.sessions.store import InboundMessage
from nanoclaw.settings import Settings
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


async def test_acks_are_synced_once_and_an_unchanged_pass_writes_nothing(rig: Rig) -> None:
    writes: list[object] = []
    writer = rig.store.engines.get(rig.layout.inbound_db)

    def on_begin(conn: Any) -> None:
        writes.append(conn)

    event.listen(writer, "begin", on_begin)
    done: list[frozenset[str]] = []

    async def listener(session_id: str, ids: frozenset[str]) -> None:
        done.append(ids)

    rig.loop.on_turn_done(listener)
    rig.store.insert_messages(rig.layout, [chat("a"), chat("b")])
    rig.runner.claim(["a", "b"])
    writes.clear()
    await rig.loop.drain(rig.session.id)
    assert writes == []  # only processing claims: nothing to fold in
    rig.runner.finish(["a"], [])
    await rig.loop.drain(rig.session.id)
    assert len(writes) == 1 and statuses(rig) == {"a": "completed", "b": "pending"}
    assert done == [frozenset({"a"})]
    await rig.loop.drain(rig.session.id)  # the ack is re-read inside the margin, unchanged
    await rig.loop.drain(rig.session.id)
    assert len(writes) == 1 and done == [frozenset({"a"})]
    rig.runner.finish(["b"], [])
    await rig.loop.drain(rig.session.id)
    assert len(writes) == 2 and statuses(rig) == {"a": "completed", "b": "completed"}
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
