"""``outbound/.turn``: a runner names its batch before the claim is written; the host reads it on exit."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from agent_runner.db import SessionDB

from nanoclaw.contract.layout import SessionLayout
from nanoclaw.contract.turn_file import (
    MAX_TURN_FILE_BYTES,
    TURN_FILE,
    TurnFileError,
    parse_turn,
    write_turn,
)
from nanoclaw.sessions.store import InboundMessage, RoutingRow, SessionStore
from nanoclaw.sweep import ops
from nanoclaw.sweep.stuck import Claim, decide_stuck_action


@pytest.fixture
def layout(tmp_path: Path) -> SessionLayout:
    store = SessionStore(sessions_root=tmp_path / "sessions")
    layout = store.ensure("andy", "s1")
    store.prepare_outbound(layout)
    store.project(layout, dests=[], routing=RoutingRow("cli", "local", None))
    store.insert_messages(
        layout,
        [
            InboundMessage(id=i, kind="chat", content={"text": i}, channel_type="cli")
            for i in ("a", "b", "c")
        ],
    )
    return layout


def _turn(layout: SessionLayout) -> Path:
    return layout.outbound_db.parent / TURN_FILE


def test_the_rows_a_turn_names_without_an_ack_are_held_and_answered_ones_are_not(
    layout: SessionLayout,
) -> None:
    write_turn(layout.outbound_db.parent, ["a", "b", "a"])
    claims = {"b": Claim("completed", "2026-01-01T00:00:00Z"), "c": Claim("processing", "x")}
    assert ops.held_by_exited_runner(layout, claims) == ["c", "a"]
    _turn(layout).unlink()
    assert ops.held_by_exited_runner(layout, claims) == ["c"]


@pytest.mark.parametrize(
    "plant",
    [
        pytest.param(lambda p, outside: p.write_bytes(b"{not json"), id="garbage"),
        pytest.param(lambda p, outside: p.write_text('{"ids": ["a"]}'), id="not-a-list"),
        pytest.param(lambda p, outside: p.write_text('["a", 7]'), id="not-ids"),
        pytest.param(
            lambda p, outside: p.write_text('["a"]' + " " * MAX_TURN_FILE_BYTES), id="too-large"
        ),
        pytest.param(lambda p, outside: p.symlink_to(outside), id="symlink"),
        pytest.param(lambda p, outside: os.mkfifo(p), id="fifo"),
        pytest.param(lambda p, outside: p.mkdir(), id="folder"),
        pytest.param(lambda p, outside: p.write_bytes(b"[" * 5000), id="deep-nesting"),
    ],
)
def test_a_turn_file_the_host_cannot_trust_names_nothing_and_never_blocks(
    layout: SessionLayout,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    plant: Callable[[Path, Path], object],
) -> None:
    outside = tmp_path / "elsewhere.json"
    outside.write_text('["a"]')
    plant(_turn(layout), outside)
    claims = {"c": Claim("processing", "x")}
    with caplog.at_level(logging.WARNING, logger="nanoclaw.sweep"):
        assert ops.held_by_exited_runner(layout, claims) == ["c"]
    assert any(TURN_FILE in r.getMessage() for r in caplog.records)


def test_parse_refuses_what_is_not_a_list_of_ids() -> None:
    assert parse_turn(b'["m1", "m2"]') == ("m1", "m2")
    for bad in (
        b"\xff",
        b"[]x",
        b'[""]',
        b'["' + b"x" * 600 + b'"]',
        b"null",
        b"[" * 5000,  # nesting deep enough to exhaust the decoder's recursion
        b"[" + b"9" * 5000 + b"]",  # an integer past Python's digit limit
    ):
        with pytest.raises(TurnFileError):
            parse_turn(bad)


def test_the_runner_names_its_batch_and_unnames_the_rows_it_gives_back(
    layout: SessionLayout,
) -> None:
    db = SessionDB(inbound_path=layout.inbound_db, outbound_path=layout.outbound_db)
    db.claim_later(["a", "b"])
    assert parse_turn(_turn(layout).read_bytes()) == ("a", "b")
    db.release(["a"])
    assert parse_turn(_turn(layout).read_bytes()) == ("b",)
    assert ops.held_by_exited_runner(layout, {}) == ["b"]
    db.finish(["b"], [])
    acks = {"b": Claim("completed", "x")}
    assert ops.held_by_exited_runner(layout, acks) == []  # answered: no try for it


@pytest.mark.parametrize("plant_folder", [False, True])
def test_releasing_claims_also_releases_what_the_turn_named(
    layout: SessionLayout, tmp_path: Path, plant_folder: bool
) -> None:
    store = SessionStore(sessions_root=tmp_path / "sessions")
    if plant_folder:
        (_turn(layout) / "inner").mkdir(parents=True)
    else:
        write_turn(layout.outbound_db.parent, ["a"])
    store.clear_orphan_claims(layout)  # before every start, and wherever the sweep releases
    assert not _turn(layout).exists() and not _turn(layout).is_symlink()
    assert ops.held_by_exited_runner(layout, {}) == []


def test_a_turn_stuck_before_its_claim_is_written_is_judged_from_the_file_s_time(
    layout: SessionLayout,
) -> None:
    write_turn(layout.outbound_db.parent, ["a"])
    began = time.time() - 120  # the loop blocked since, so neither claim nor heartbeat moved
    os.utime(_turn(layout), (began, began))
    held = ops.with_unwritten_claims(layout, {})
    assert list(held) == ["a"] and held["a"].status == "processing"
    assert decide_stuck_action(datetime.now(UTC), began, None, held).action == "kill"
    assert decide_stuck_action(datetime.now(UTC), began, None, {}).action == "ok"


@pytest.mark.parametrize("planted", ["symlink", "fifo"])
def test_the_runner_never_writes_through_or_blocks_on_a_planted_turn_file(
    layout: SessionLayout, tmp_path: Path, planted: str
) -> None:
    target = tmp_path / "victim"
    target.write_text("keep")
    if planted == "symlink":
        _turn(layout).symlink_to(target)
    else:
        os.mkfifo(_turn(layout))
    db = SessionDB(inbound_path=layout.inbound_db, outbound_path=layout.outbound_db)
    db.claim_later(["a"])  # a FIFO opened for writing by name would block here
    assert target.read_text() == "keep"
    assert parse_turn(_turn(layout).read_bytes()) == ("a",)  # the planted entry was replaced


def test_a_turn_that_cannot_be_named_is_claimed_at_once(
    layout: SessionLayout, caplog: pytest.LogCaptureFixture
) -> None:
    (_turn(layout) / "inner").mkdir(parents=True)  # rename cannot replace a folder
    db = SessionDB(inbound_path=layout.inbound_db, outbound_path=layout.outbound_db)
    with caplog.at_level(logging.WARNING, logger="agent_runner"):
        db.claim_later(["a"])
    assert db.claimed_ids() == {"a"}  # as before a turn: a crash now still costs a try
    assert any("cannot name the turn" in r.getMessage() for r in caplog.records)
