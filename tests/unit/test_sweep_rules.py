"""Stuck detection (a pure function), retry resets with backoff, nudges, hot journals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from nanoclaw.contract.dbwatch import change_signature
from nanoclaw.contract.timeutil import to_iso
from nanoclaw.sessions.outbound_reader import RunnerState
from nanoclaw.sessions.schema import messages_in, processing_ack
from nanoclaw.sessions.store import InboundMessage, SessionStore
from nanoclaw.sweep import ops
from nanoclaw.sweep.stuck import Claim, decide_stuck_action

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def ago(seconds: float) -> float:
    return (NOW - timedelta(seconds=seconds)).timestamp()


def claim(seconds_ago: float, *, zone: bool = True) -> Claim:
    text = to_iso(NOW - timedelta(seconds=seconds_ago))
    return Claim("processing", text if zone else text.rstrip("Z").replace("T", " "))


def tool(name: str | None, timeout_ms: int | None) -> RunnerState:
    return RunnerState(1, None, name, timeout_ms, None)


def test_healthy_runner_is_left_alone() -> None:
    assert decide_stuck_action(NOW, ago(1), None, {"m": claim(30)}).action == "ok"
    assert decide_stuck_action(NOW, ago(5), None, {}).action == "ok"


def test_heartbeat_older_than_the_ceiling_kills() -> None:
    decision = decide_stuck_action(NOW, ago(1801), None, {})
    assert decision.action == "kill" and "heartbeat" in decision.reason


def test_missing_heartbeat_skips_the_ceiling_check() -> None:
    assert decide_stuck_action(NOW, None, None, {}).action == "ok"
    assert decide_stuck_action(NOW, 0, None, {}).action == "ok"


def test_old_claim_without_heartbeat_since_kills() -> None:
    decision = decide_stuck_action(NOW, ago(70), None, {"m": claim(70)})
    assert decision.action == "kill" and decision.stuck_ids == ("m",)


def test_old_claim_with_progress_since_is_alive() -> None:
    assert decide_stuck_action(NOW, ago(10), None, {"m": claim(70)}).action == "ok"


def test_claim_time_without_zone_is_utc() -> None:
    assert decide_stuck_action(NOW, ago(70), None, {"m": claim(70, zone=False)}).action == "kill"
    assert decide_stuck_action(NOW, ago(30), None, {"m": claim(30, zone=False)}).action == "ok"


def test_declared_tool_timeout_widens_both_thresholds() -> None:
    long_tool = tool("bash", 3_600_000)  # one hour
    assert decide_stuck_action(NOW, ago(2000), long_tool, {"m": claim(2000)}).action == "ok"
    assert decide_stuck_action(NOW, ago(3700), long_tool, {"m": claim(3700)}).action == "kill"
    finished = tool(None, 3_600_000)  # no tool running: no widening
    assert decide_stuck_action(NOW, ago(2000), finished, {"m": claim(2000)}).action == "kill"


def test_thresholds_are_configurable() -> None:
    fast = decide_stuck_action(NOW, ago(3), None, {"m": claim(3)}, claim_tolerance_s=2)
    assert fast.action == "kill"
    assert decide_stuck_action(NOW, ago(3), None, {}, ceiling_s=2).action == "kill"


# -- resets on real session DBs ---------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> SessionStore:
    return SessionStore(sessions_root=tmp_path / "s")


def test_reset_counts_a_try_backs_off_and_fails_at_max_tries(store: SessionStore) -> None:
    layout = store.ensure("andy", "sess-1")
    store.prepare_outbound(layout)
    store.insert_messages(
        layout,
        [
            InboundMessage(
                id="m1", kind="chat", content={"text": "x"}, channel_type="cli", platform_id="local"
            )
        ],
    )
    delays = []
    now = NOW
    for attempt in range(1, 6):
        with store.engines.get(layout.outbound_db).begin() as conn:
            conn.execute(
                processing_ack.insert().values(
                    message_id="m1", status="processing", status_changed=to_iso(now)
                )
            )
        result = ops.reset_stuck_rows(store, layout, ["m1"], now=now, backoff_base_s=5, max_tries=5)
        assert result.released == 1
        if attempt < 5:
            after = datetime.fromisoformat(result.retried["m1"].replace("Z", "+00:00"))
            delays.append((after - now).total_seconds())
            now = after
        else:
            assert [f.id for f in result.failed] == ["m1"] and result.failed[0].tries == 5
    assert delays == [5, 10, 20, 40]
    with store.engines.get(layout.inbound_db, readonly=True).connect() as conn:
        row = conn.execute(select(messages_in)).one()
    assert row.status == "failed" and row.tries == 5


def test_nudge_wakes_a_watcher_without_changing_data(store: SessionStore) -> None:
    layout = store.ensure("andy", "sess-1")
    store.insert_messages(layout, [InboundMessage(id="m1", kind="chat", content={"text": "x"})])
    with store.engines.get(layout.inbound_db, readonly=True).connect() as conn:
        before = [tuple(r) for r in conn.execute(select(messages_in))]
    signature = change_signature(layout.inbound_db)
    ops.nudge(store, layout)
    assert change_signature(layout.inbound_db) != signature
    with store.engines.get(layout.inbound_db, readonly=True).connect() as conn:
        assert [tuple(r) for r in conn.execute(select(messages_in))] == before


def test_hot_journal_left_by_a_killed_writer_is_rolled_back(store: SessionStore) -> None:
    import subprocess
    import sys

    layout = store.ensure("andy", "sess-1")
    store.prepare_outbound(layout)
    # A writer SIGKILLed mid-transaction, after its changes spilled into the DB file.
    script = (
        "import os, sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('PRAGMA journal_mode=DELETE'); c.execute('PRAGMA cache_size=1')\n"
        "c.execute('BEGIN IMMEDIATE')\n"
        "for i in range(3000):\n"
        "    c.execute('INSERT INTO processing_ack VALUES (?, ?, ?)',\n"
        "              (f'torn{i}', 'processing', 'x' * 200))\n"
        "os.kill(os.getpid(), 9)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(layout.outbound_db)], check=False)
    journal = layout.outbound_db.with_name("outbound.db-journal")
    assert journal.exists()
    assert ops.recover_journals(store, layout) is True
    assert not journal.exists()
    assert ops.read_claims(store, layout) == {}
