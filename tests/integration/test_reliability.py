"""Runner crashes, hangs, damaged session DBs and on-time due work, against a real host.

Runners are real subprocesses (process runtime) killed with real signals; the user side is
the real CLI socket.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from nanoclaw.contract.layout import SessionLayout
from nanoclaw.contract.timeutil import parse_iso, to_iso, utc_now
from nanoclaw.host import Host, build_host
from nanoclaw.sessions.schema import messages_in
from nanoclaw.sessions.store import InboundMessage
from nanoclaw.settings import Settings
from nanoclaw.sweep import ops
from nanoclaw.sweep.stuck import Claim
from tests.channel_helpers import until
from tests.crash.harness import Observers, send_until_accepted
from tests.helpers import make_agent, say, texts, wire_chat

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def fast_host(settings: Settings) -> AsyncIterator[Host]:
    """A host whose stuck thresholds and backoff are scaled down to seconds."""
    settings.sweep_interval_s = 0.25
    settings.stuck_claim_tolerance_s = 1.0
    settings.retry_backoff_base_s = 0.3
    settings.runner_stop_grace_s = 0.5
    settings.max_tries = 2
    host = build_host(settings)
    await host.start()
    try:
        yield host
    finally:
        await asyncio.wait_for(host.stop(), timeout=30)  # a cancel swallowed would hang here


def _layout(host: Host, chat: str) -> SessionLayout:
    mg = host.repo.messaging_group("cli", chat)
    assert mg is not None
    (session,) = [s for s in host.repo.sessions() if s.messaging_group_id == mg.id]
    return host.sessions.layout(session)


def _row(host: Host, layout: SessionLayout, message_id: str) -> dict[str, object]:
    from sqlalchemy import select

    with host.engines.get(layout.inbound_db, readonly=True).connect() as conn:
        row = conn.execute(select(messages_in).where(messages_in.c.id == message_id)).first()
    assert row is not None
    return dict(row._mapping)


def _processing(host: Host, layout: SessionLayout) -> dict[str, Claim]:
    return {
        k: c for k, c in ops.read_claims(host.store, layout).items() if c.status == "processing"
    }


async def test_runner_sigkilled_mid_turn_is_retried_and_answered(fast_host: Host) -> None:
    host = fast_host
    agent = make_agent(host.repo, "Andy")
    wire_chat(host.repo, agent, "local")
    await say(host.settings.cli_socket, "hello")  # the session and its runner exist
    layout = _layout(host, "local")
    reply = asyncio.create_task(say(host.settings.cli_socket, "!sleep 0.8", timeout=30))
    await until(lambda: _processing(host, layout), "the turn to claim the message", within_s=10)
    state = host.reader.runner_state(layout)
    assert state is not None and state.pid
    os.kill(state.pid, signal.SIGKILL)
    exchange = await reply
    assert any("!sleep 0.8" in t for t in texts(exchange))
    rows = [r for r in _all_rows(host, layout) if "!sleep" in str(r["content"])]
    assert len(rows) == 1 and rows[0]["status"] == "completed"
    assert rows[0]["tries"] == 1  # the killed attempt counted one try, then it was retried


def _all_rows(host: Host, layout: SessionLayout) -> list[dict[str, object]]:
    from sqlalchemy import select

    with host.engines.get(layout.inbound_db, readonly=True).connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(messages_in)).all()]


async def test_hung_runner_is_killed_within_thresholds_retried_then_failed_with_notices(
    fast_host: Host,
) -> None:
    host = fast_host
    settings = host.settings
    agent = make_agent(host.repo, "Andy")
    wire_chat(host.repo, agent, "local")
    await say(settings.cli_socket, "hello")
    layout = _layout(host, "local")
    observers = Observers(settings.cli_socket, ["local"])
    observers.start()
    try:
        await observers.all_ready(within_s=10)
        await send_until_accepted(
            settings.cli_socket, chat="local", message_id="hang1", text="!sleep 60"
        )
        message_id = f"cli:local:hang1:{agent.id}"
        await until(lambda: message_id in _processing(host, layout), "the first claim", within_s=10)
        first_claim = parse_iso(_processing(host, layout)[message_id].status_changed)
        await until(lambda: _row(host, layout, message_id)["tries"] == 1, "the kill", within_s=15)
        killed_after = (utc_now() - first_claim).total_seconds()
        # tolerance + one sweep interval + the stop grace, plus scheduling slack
        limit = (
            settings.stuck_claim_tolerance_s
            + settings.sweep_interval_s
            + settings.runner_stop_grace_s
            + 1.5
        )
        assert killed_after <= limit, f"killed {killed_after:.2f} s after the claim"
        # Retried: a new runner claims it again after the backoff …
        await until(lambda: message_id in _processing(host, layout), "the retry", within_s=15)
        # … hangs again, and at max_tries the message ends failed.
        await until(
            lambda: _row(host, layout, message_id)["status"] == "failed", "fail", within_s=20
        )
        assert _row(host, layout, message_id)["tries"] == settings.max_tries
        # The user is told at the message's reply address …
        await until(
            lambda: any("could not process" in r for r in observers.replies["local"]),
            "the user's failure notice",
            within_s=10,
        )
        # … and so is the agent, through its own inbound queue.
        notice = _row(host, layout, f"notice-failed-in-{message_id}")
        assert notice["channel_type"] == "agent" and "failed" in str(notice["content"])
    finally:
        await observers.close()


async def test_unreadable_session_db_does_not_stop_other_sessions(fast_host: Host) -> None:
    host = fast_host
    agent = make_agent(host.repo, "Andy")
    wire_chat(host.repo, agent, "good")
    wire_chat(host.repo, agent, "bad")
    await say(host.settings.cli_socket, "hi", chat="good")
    await say(host.settings.cli_socket, "hi", chat="bad")
    bad = _layout(host, "bad")
    good_id = _layout(host, "good").root.name
    await host.supervisor.stop(bad.root.name)
    bad.inbound_db.write_bytes(b"this is not a database" * 100)
    host.engines.forget(bad.inbound_db)
    report = await host.sweep.sweep_once()
    assert bad.root.name in report.skipped
    assert good_id not in report.skipped and report.swept >= 1
    for n in range(3):
        exchange = await say(host.settings.cli_socket, f"still there {n}?", chat="good")
        assert any(f"still there {n}?" in t for t in texts(exchange))


async def _claim_delay(host: Host, layout: SessionLayout, message_id: str, due: str) -> float:
    await until(lambda: message_id in ops.read_claims(host.store, layout), "the claim", within_s=10)
    claimed = parse_iso(ops.read_claims(host.store, layout)[message_id].status_changed)
    return (claimed - parse_iso(due)).total_seconds()


@pytest.mark.parametrize("runner_alive", [True, False])
async def test_delayed_row_starts_within_one_second_of_its_time(
    host: Host, runner_alive: bool
) -> None:
    agent = make_agent(host.repo, "Andy")
    wire_chat(host.repo, agent, "local")
    await say(host.settings.cli_socket, "hello")
    layout = _layout(host, "local")
    if not runner_alive:
        await host.supervisor.stop(layout.root.name)
    assert host.settings.sweep_interval_s >= 60  # the sweep cannot be what starts it
    due = to_iso(utc_now() + timedelta(seconds=2.5))
    await asyncio.to_thread(
        host.store.insert_messages,
        layout,
        [
            InboundMessage(
                id="later-1",
                kind="chat",
                content={"text": "delayed hello", "sender": "alice"},
                channel_type="cli",
                platform_id="local",
                process_after=due,
            )
        ],
    )
    delay = await _claim_delay(host, layout, "later-1", due)
    print(f"delayed row claimed {delay * 1000:.0f} ms after its time (alive: {runner_alive})")
    assert 0 <= delay < 1.0, f"started {delay:.3f} s after its time"


async def test_a_session_without_series_is_not_looked_at_per_turn_until_one_is_scheduled(
    host: Host,
) -> None:
    agent = make_agent(host.repo, "Andy")
    wire_chat(host.repo, agent, "local")
    await say(host.settings.cli_socket, "hello")
    layout = _layout(host, "local")
    session_id = layout.root.name
    # The first turn's look found no recurring row: later turns there make none.
    await until(lambda: host.sweep.series.none_in(session_id), "the first turn's look")
    assert host.settings.sweep_interval_s >= 60  # the sweep cannot be what re-arms below
    due = to_iso(utc_now() + timedelta(seconds=1))
    await asyncio.to_thread(
        host.store.insert_messages,
        layout,
        [
            InboundMessage(
                id="every-minute",
                kind="task",
                content={"prompt": "tick"},
                channel_type="cli",
                platform_id="local",
                process_after=due,
                recurrence="* * * * *",
                series_id="every-minute",
            )
        ],
    )
    assert not host.sweep.series.none_in(session_id)  # the insert took it out at once

    def next_occurrence() -> bool:
        from sqlalchemy import select

        with host.store.engines.get(layout.inbound_db, readonly=True).connect() as conn:
            rows = conn.execute(
                select(messages_in.c.id, messages_in.c.status).where(
                    messages_in.c.series_id == "every-minute"
                )
            ).all()
        return any(r.id != "every-minute" and r.status == "pending" for r in rows)

    # Its occurrence ran and was re-armed when its turn ended.
    await until(next_occurrence, "the next occurrence, re-armed", within_s=60)
    assert not host.sweep.series.none_in(session_id)
