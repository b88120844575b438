"""The sweep visits only sessions with something to do: settled, unchanged sessions are skipped."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from agent_runner.db import OutboundMessage, SessionDB

from nanoclaw.admin.store import AdminStore
from nanoclaw.clock import SystemClock
from nanoclaw.contract import sessiondb
from nanoclaw.contract.timeutil import parse_iso, to_iso, utc_now
from nanoclaw.host import Host, build_host
from nanoclaw.sessions.store import InboundMessage
from nanoclaw.settings import Settings
from nanoclaw.sweep.loop import SweepReport
from nanoclaw.sweep.settled import SETTLED_RECORD_NAME
from tests.fakes.runtime import FakeRuntime
from tests.helpers import agent_sessions, make_agent, wait_for_state, wire_chat

RECOVERY_DEADLINE_S = 30.0


async def recovery_report(host: Host) -> SweepReport:
    """The start-up recovery's report, once its visits (made after the socket opens) are done."""
    await asyncio.wait_for(host.sweep.recovered.wait(), timeout=RECOVERY_DEADLINE_S)
    report = host.sweep.last_report
    assert report is not None
    return report


@pytest.fixture
async def quiet_host(settings: Settings) -> AsyncIterator[Host]:
    instance = build_host(settings, runtime=FakeRuntime())
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


async def test_settled_sessions_are_skipped_until_one_changes(quiet_host: Host) -> None:
    host = quiet_host
    andy = make_agent(host.repo, "Andy")
    layouts = {}
    for n in range(5):
        mg, _ = wire_chat(host.repo, andy, f"chat{n}")
        session, layout = host.sessions.resolve(
            agent_group_id=andy.id, messaging_group_id=mg.id, thread_id=None, mode="shared"
        )
        layouts[session.id] = layout
    await host.sweep.sweep_once()  # visits every session and learns which are settled
    await host.sweep.sweep_once()
    report = await host.sweep.sweep_once()
    assert (report.swept, report.unchanged) == (0, 5)

    changed_id = next(iter(layouts))
    host.store.insert_messages(
        layouts[changed_id], [InboundMessage(id="m1", kind="chat", content={"text": "hi"})]
    )
    report = await host.sweep.sweep_once()
    assert report.swept == 1 and report.unchanged == 4
    assert report.woken == [changed_id]  # the one that changed is visited and its work woken


class AheadClock(SystemClock):
    """The system clock, ``ahead`` later: a restart after that much downtime."""

    def __init__(self, ahead: timedelta) -> None:
        self.ahead = ahead

    def now(self) -> datetime:
        return super().now() + self.ahead


async def test_a_restart_visits_only_sessions_changed_or_due_since_their_settled_visit(
    settings: Settings,
) -> None:
    first = build_host(settings, runtime=FakeRuntime())
    await first.start()
    andy = make_agent(first.repo, "Andy")
    ids, layouts = [], []
    for n in range(5):
        mg, _ = wire_chat(first.repo, andy, f"chat{n}")
        session, layout = first.sessions.resolve(
            agent_group_id=andy.id, messaging_group_id=mg.id, thread_id=None, mode="shared"
        )
        ids.append(session.id)
        layouts.append(layout)
    due = to_iso(utc_now() + timedelta(hours=1))
    for layout in layouts[:2]:  # two sessions hold a task due in an hour
        first.store.insert_messages(
            layout,
            [InboundMessage(id="t1", kind="task", content={"prompt": "x"}, process_after=due)],
        )
    await first.sweep.sweep_once()  # every session visited and found settled
    await first.stop()

    # While the host is down: a runner's write to one outbound.db, a journal beside another.
    with sessiondb.writing(layouts[2].outbound_db) as conn:
        conn.execute("INSERT INTO session_state VALUES ('k', 'v')")
    layouts[3].inbound_db.with_name("inbound.db-journal").write_bytes(b"")

    runtime = FakeRuntime()
    second = build_host(settings, runtime=runtime)
    await second.start()
    try:
        report = await recovery_report(second)
        assert report is not None
        assert (report.swept, report.unchanged) == (2, 3)  # the written one and the journal
        assert second.sweep.timer.due_at(ids[0]) == parse_iso(due)  # restored, not re-read
        assert runtime.starts == []
    finally:
        await second.stop()

    # Two hours later the task's time has passed: that session is visited and woken.
    runtime = FakeRuntime()
    third = build_host(settings, runtime=runtime, clock=AheadClock(timedelta(hours=2)))
    await third.start()
    try:
        report = await recovery_report(third)
        assert report is not None
        assert sorted(report.woken) == sorted(ids[:2])
        assert sorted(runtime.starts) == sorted(ids[:2])
    finally:
        await third.stop()


async def test_an_unreadable_settled_record_means_every_session_is_visited(
    settings: Settings,
) -> None:
    first = build_host(settings, runtime=FakeRuntime())
    await first.start()
    agent_sessions(first.repo, first.sessions, chats=3)
    await first.sweep.sweep_once()
    await first.stop()
    record = settings.data_path / SETTLED_RECORD_NAME
    assert len(json.loads(record.read_text())["sessions"]) == 3
    record.write_text("{not json")

    second = build_host(settings, runtime=FakeRuntime())
    await second.start()
    try:
        report = await recovery_report(second)
        assert report is not None and (report.swept, report.unchanged) == (3, 0)
    finally:
        await second.stop()


async def test_a_reply_written_while_the_host_was_down_is_delivered_after_the_restart(
    settings: Settings,
) -> None:
    first = build_host(settings, runtime=FakeRuntime())
    await first.start()
    layouts = agent_sessions(first.repo, first.sessions, chats=3)
    await first.sweep.sweep_once()
    await first.stop()

    # A runner's reply lands in one session while no host runs.
    runner = SessionDB(inbound_path=layouts[1].inbound_db, outbound_path=layouts[1].outbound_db)
    out_id = "out-late"
    runner.send(
        OutboundMessage(
            kind="chat",
            content={"text": "late"},
            channel_type="cli",
            platform_id="chat1",
            id=out_id,
        )
    )

    second = build_host(settings, runtime=FakeRuntime())
    await second.start()
    try:
        state = await wait_for_state(
            lambda: second.reader.deliveries(layouts[1], [out_id]).get(out_id)
        )
        assert state is not None and state.status == "delivered"
        assert all(second.reader.all_delivered(layout) for layout in layouts)
    finally:
        await second.stop()


async def test_the_settled_record_says_whether_every_reply_had_its_delivery_record(
    settings: Settings,
) -> None:
    host = build_host(settings, runtime=FakeRuntime())  # not started: nothing delivers
    host.db.migrate()
    andy = make_agent(host.repo, "Andy")
    mg, _ = wire_chat(host.repo, andy, "chat0")
    session, layout = host.sessions.resolve(
        agent_group_id=andy.id, messaging_group_id=mg.id, thread_id=None, mode="shared"
    )
    runner = SessionDB(inbound_path=layout.inbound_db, outbound_path=layout.outbound_db)
    runner.send(
        OutboundMessage(
            kind="chat", content={"text": "hi"}, channel_type="cli", platform_id="chat0", id="o1"
        )
    )
    record = settings.data_path / SETTLED_RECORD_NAME

    await host.sweep.sweep_once()
    entry = json.loads(record.read_text())["sessions"][session.id]
    assert entry["delivered"] is False  # a restart must drain it

    host.store.record_delivery(layout, "o1", status="delivered")
    await host.sweep.sweep_once()
    entry = json.loads(record.read_text())["sessions"][session.id]
    assert entry["delivered"] is True

    # A restart with that record knows the session has nothing to drain (it is not opened).
    second = build_host(settings, runtime=FakeRuntime())
    await second.start()
    try:
        await recovery_report(second)
        assert second.sweep.settled_and_delivered(session.id)
    finally:
        await second.stop()


async def test_a_session_deleted_by_a_cascade_is_forgotten_by_the_next_sweep(
    quiet_host: Host,
) -> None:
    host = quiet_host
    kept_agent, gone_agent = make_agent(host.repo, "Andy"), make_agent(host.repo, "Bea")
    ids = {}
    for agent in (kept_agent, gone_agent):
        mg, _ = wire_chat(host.repo, agent, f"chat-{agent.name}")
        session, _ = host.sessions.resolve(
            agent_group_id=agent.id, messaging_group_id=mg.id, thread_id=None, mode="shared"
        )
        await host.delivery.drain(session.id)  # a pass: its acks' watermark is now kept
        ids[agent.name] = session.id
    await host.sweep.sweep_once()
    assert set(ids.values()) <= host.delivery.known()

    AdminStore(host.repo.db).delete_agent_group(gone_agent.id)  # its sessions go with it
    await host.sweep.sweep_once()
    assert ids["Bea"] not in host.delivery.known()
    assert ids["Andy"] in host.delivery.known()


async def test_a_session_made_and_deleted_between_two_sweeps_is_forgotten(
    quiet_host: Host,
) -> None:
    host = quiet_host
    await host.sweep.sweep_once()  # the sweep before the session exists
    agent = make_agent(host.repo, "Bea")
    mg, _ = wire_chat(host.repo, agent, "chat-Bea")
    session, layout = host.sessions.resolve(
        agent_group_id=agent.id, messaging_group_id=mg.id, thread_id=None, mode="shared"
    )
    later = to_iso(utc_now() + timedelta(hours=1))
    host.store.insert_messages(
        layout, [InboundMessage(id="t1", kind="task", content={"prompt": "x"}, process_after=later)]
    )
    await host.delivery.drain(session.id)
    await wait_for_state(lambda: host.sweep.timer.due_at(session.id) is not None)
    assert session.id in host.delivery.known() and session.id in host.sweep.timer.tracked()

    AdminStore(host.repo.db).delete_agent_group(agent.id)
    await host.sweep.sweep_once()  # it was never in a listing, yet the host forgets it
    assert session.id not in host.delivery.known()
    assert session.id not in host.sweep.timer.tracked()
    assert host.sweep.timer.due_at(session.id) is None  # its task is never fired
