"""Find-or-create of a session is atomic per (agent, chat, thread), its DBs ready before the first write."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nanoclaw.channels.base import InboundEvent, InboundMessage
from nanoclaw.host import Host, build_host
from nanoclaw.settings import Settings
from tests.fakes.runtime import FakeRuntime
from tests.helpers import make_agent, wire_chat

CHATS = 10
MESSAGES_PER_CHAT = 12


@pytest.fixture
async def quiet_host(settings: Settings) -> AsyncIterator[Host]:
    """The real host and router; runners are fakes, so only the routing writes are exercised."""
    instance = build_host(settings, runtime=FakeRuntime())
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


async def test_simultaneous_first_messages_make_one_session_per_chat_and_lose_none(
    quiet_host: Host,
) -> None:
    host = quiet_host
    andy = make_agent(host.repo, "Andy")
    chats = [f"new{i}" for i in range(CHATS)]
    for chat in chats:
        wire_chat(host.repo, andy, chat)
    events = [
        InboundEvent(
            channel_type="cli",
            platform_id=chat,
            thread_id=None,
            message=InboundMessage(id=f"{chat}-m{n}", text=f"first {n}", sender=f"user{n}"),
        )
        for chat in chats  # one chat's messages side by side: they race for its session
        for n in range(MESSAGES_PER_CHAT)
    ]

    receipts = await asyncio.gather(*(host.on_inbound(e) for e in events))

    assert [r.delivered_to for r in receipts] == [1] * len(events)
    sessions = host.repo.sessions()
    assert len(sessions) == CHATS  # no chat got two sessions
    for session in sessions:
        mg = host.repo.messaging_group_by_id(session.messaging_group_id or "")
        assert mg is not None
        conn = sqlite3.connect(host.sessions.layout(session).inbound_db)
        ids = {row[0] for row in conn.execute("SELECT id FROM messages_in WHERE kind = 'chat'")}
        conn.close()
        expected = {
            f"cli:{mg.platform_id}:{mg.platform_id}-m{n}:{andy.id}"
            for n in range(MESSAGES_PER_CHAT)
        }
        assert ids == expected  # none lost


def _projection(inbound_db: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    conn = sqlite3.connect(inbound_db)
    try:
        dests = conn.execute(
            "SELECT name, display_name, type, channel_type, platform_id, agent_group_id"
            " FROM destinations ORDER BY name"
        ).fetchall()
        routing = conn.execute(
            "SELECT channel_type, platform_id, thread_id FROM session_routing"
        ).fetchall()
    finally:
        conn.close()
    return dests, routing


async def test_a_sessions_runner_starts_with_the_agents_destinations_and_reply_address(
    settings: Settings,
) -> None:
    runtime = FakeRuntime()
    host = build_host(settings, runtime=runtime)
    await host.start()
    try:
        andy = make_agent(host.repo, "Andy")
        helper = make_agent(host.repo, "Helper")
        for chat in ("beta", "alpha"):
            wire_chat(host.repo, andy, chat)
        host.repo.add_agent_destination(agent_group_id=andy.id, name="helper", target_id=helper.id)
        # A chat the agent may send to but is not wired to: its session replies elsewhere.
        lone = host.repo.ensure_messaging_group(channel_type="cli", platform_id="lone", name="Lone")

        session, layout = host.sessions.resolve(
            agent_group_id=andy.id, messaging_group_id=lone.id, thread_id="t1", mode="per-thread"
        )
        # Creating a session writes its schema only: a session that never runs costs no
        # projection of its agent's destinations.
        assert _projection(layout.inbound_db) == ([], [])
        assert session.thread_id == "t1"

        assert await host.supervisor.wake(session.id)
        assert runtime.starts == [session.id]
        dests, routing = _projection(layout.inbound_db)
    finally:
        await host.stop()
    assert dests == [
        ("alpha", "alpha", "channel", "cli", "alpha", None),
        ("beta", "beta", "channel", "cli", "beta", None),
        ("helper", None, "agent", None, None, helper.id),
    ]
    assert routing == [("cli", "lone", "t1")]
