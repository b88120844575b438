"""Start-up recovery visits run after the socket opens; a wake first visits a session not yet visited."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

from nanoclaw.channels.base import InboundEvent, InboundMessage
from nanoclaw.contract.timeutil import to_iso, utc_now
from nanoclaw.host import build_host
from nanoclaw.runtime.base import RunnerHandle, RunSpec
from nanoclaw.sessions.store import InboundMessage as StoredMessage
from nanoclaw.settings import Settings
from nanoclaw.sweep.loop import SweepReport
from nanoclaw.sweep.settled import SETTLED_RECORD_NAME
from tests.fakes.runtime import FakeRuntime
from tests.helpers import agent_sessions, make_agent, wait_for_state, wire_chat

RECOVERY_DEADLINE_S = 30.0


@dataclass
class SeeingRuntime(FakeRuntime):
    """A fake runtime that reads the missed task's due time at the moment a runner starts."""

    inbound: Path | None = None
    due_at_start: list[str | None] = field(default_factory=list)

    async def start(self, spec: RunSpec) -> RunnerHandle:
        assert self.inbound is not None
        conn = sqlite3.connect(f"file:{self.inbound}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT process_after FROM messages_in WHERE id = 't1'").fetchone()
        finally:
            conn.close()
        self.due_at_start.append(row[0])
        return await super().start(spec)


async def test_a_message_for_a_session_not_yet_recovered_is_answered_after_its_recovery_visit(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = build_host(settings, runtime=FakeRuntime())
    await first.start()
    andy = make_agent(first.repo, "Andy")
    mg, _ = wire_chat(first.repo, andy, "late")
    session, layout = first.sessions.resolve(
        agent_group_id=andy.id, messaging_group_id=mg.id, thread_id=None, mode="shared"
    )
    await first.stop()
    # While the host was down, an hourly task with catch-up ``skip`` missed its time.
    missed = to_iso(utc_now() - timedelta(hours=3))
    first.store.insert_messages(
        layout,
        [
            StoredMessage(
                id="t1",
                kind="task",
                content={"prompt": "hourly"},
                process_after=missed,
                recurrence="0 * * * *",
                catch_up="skip",
            )
        ],
    )
    (settings.data_path / SETTLED_RECORD_NAME).unlink(missing_ok=True)  # a first start

    runtime = SeeingRuntime(inbound=layout.inbound_db)
    second = build_host(settings, runtime=runtime)
    hold = asyncio.Event()
    finish = second.sweep.finish_recovery

    async def held_back() -> SweepReport:  # the deferred pass has not reached the session
        await hold.wait()
        return await finish()

    monkeypatch.setattr(second.sweep, "finish_recovery", held_back)
    await second.start()
    try:
        receipt = await second.on_inbound(
            InboundEvent(
                channel_type="cli",
                platform_id="late",
                thread_id=None,
                message=InboundMessage(id="m1", text="hello", sender="user1"),
            )
        )
        assert receipt.delivered_to == 1
        await wait_for_state(lambda: runtime.starts)
        assert runtime.starts == [session.id]
        assert not second.sweep.recovered.is_set()
        # The runner started only after the recovery visit moved the missed occurrence on.
        assert runtime.due_at_start[0] is not None and runtime.due_at_start[0] > to_iso(utc_now())

        hold.set()
        await asyncio.wait_for(second.sweep.recovered.wait(), timeout=RECOVERY_DEADLINE_S)
        report = second.sweep.last_report
        assert report is not None
        assert report.swept == 1  # visited once, by the wake; the deferred pass skipped it
        assert runtime.starts == [session.id]
    finally:
        await second.stop()


async def test_without_a_wake_the_deferred_pass_makes_every_recovery_visit(
    settings: Settings,
) -> None:
    first = build_host(settings, runtime=FakeRuntime())
    await first.start()
    layouts = agent_sessions(first.repo, first.sessions, chats=3)
    await first.stop()
    # A message routed while no host ran (its runner must be woken by the recovery visit).
    first.store.insert_messages(
        layouts[0], [StoredMessage(id="m0", kind="chat", content={"text": "hi"})]
    )
    (settings.data_path / SETTLED_RECORD_NAME).unlink(missing_ok=True)

    runtime = FakeRuntime()
    second = build_host(settings, runtime=runtime)
    await second.start()
    try:
        await asyncio.wait_for(second.sweep.recovered.wait(), timeout=RECOVERY_DEADLINE_S)
        report = second.sweep.last_report
        assert report is not None
        assert (report.swept, report.unchanged) == (3, 0)
        assert len(report.woken) == 1
        assert len(runtime.starts) == 1
        assert (settings.data_path / SETTLED_RECORD_NAME).exists()  # saved after the visits
    finally:
        await second.stop()
