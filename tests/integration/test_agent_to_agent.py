"""Agent-to-agent traffic through a real host (process runtime, mock model): the reply returns to
the asking session, files travel as attachments, and two agents told to keep talking stop at the
hop limit or the per-pair cap, with both agents and the originating chat told why."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event

from nanoclaw.contract.timeutil import utc_now
from nanoclaw.db.models import AgentGroup, SessionRow
from nanoclaw.host import Host, build_host
from nanoclaw.settings import Settings
from tests.agent.conftest import ChatListener, eventually
from tests.helpers import make_agent, say, wire_chat


@pytest.fixture
def make_host(settings: Settings) -> Callable[..., Any]:
    async def make(**overrides: Any) -> Host:
        for key, value in overrides.items():
            setattr(settings, key, value)
        host = build_host(settings)
        await host.start()
        return host

    return make


@pytest.fixture
async def hosts() -> AsyncIterator[list[Host]]:
    started: list[Host] = []
    yield started
    for host in started:
        await host.stop()


def pair(host: Host) -> tuple[AgentGroup, AgentGroup]:
    ada = make_agent(host.repo, "Ada")
    bob = make_agent(host.repo, "Bob")
    wire_chat(host.repo, ada, "local")
    host.repo.add_agent_destination(agent_group_id=ada.id, name="bob", target_id=bob.id)
    host.repo.add_agent_destination(agent_group_id=bob.id, name="ada", target_id=ada.id)
    return ada, bob


def rows(host: Host, session: SessionRow, where: str = "1=1") -> list[dict[str, Any]]:
    layout = host.sessions.layout(session)
    conn = sqlite3.connect(f"file:{layout.inbound_db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        found = conn.execute(f"SELECT * FROM messages_in WHERE {where} ORDER BY seq").fetchall()
    finally:
        conn.close()
    return [dict(r) | {"content": json.loads(r["content"])} for r in found]


def sessions_of(host: Host, agent: AgentGroup) -> list[SessionRow]:
    return [s for s in host.repo.sessions() if s.agent_group_id == agent.id]


def a2a_rows(host: Host) -> list[dict[str, Any]]:
    return [r for s in host.repo.sessions() for r in rows(host, s, "id LIKE 'a2a-%'")]


def settled(host: Host) -> bool:
    """No triggering row is waiting anywhere: nothing can start another turn."""
    return all(
        not rows(host, s, "trigger = 1 AND status = 'pending'") for s in host.repo.sessions()
    )


async def test_two_agents_told_to_keep_talking_stop_at_the_hop_limit(
    make_host: Callable[..., Any], hosts: list[Host]
) -> None:
    host = await make_host(a2a_max_hops=4)
    hosts.append(host)
    ada, bob = pair(host)
    on_loop: list[str] = []  # central-DB connections taken on the event loop's thread

    def checkout(*_: Any) -> None:
        if asyncio._get_running_loop() is not None:
            on_loop.append(threading.current_thread().name)

    event.listen(host.db.engine, "checkout", checkout)
    async with ChatListener(host.settings.cli_socket) as chat:
        await say(host.settings.cli_socket, "!to bob keep talking to me forever")
        notice = await chat.wait_for(lambda f: "were stopped" in str(f.get("text")))
    event.remove(host.db.engine, "checkout", checkout)
    assert on_loop == []  # the limit path, too, reads the central DB on its own thread
    assert "Ada and Bob" in notice["text"] and "limit of 4" in notice["text"]
    await eventually(lambda: settled(host), timeout_s=20)
    exchanged = a2a_rows(host)
    assert sorted(r["content"]["a2a"]["hop"] for r in exchanged) == [1, 2, 3, 4]
    assert all(r["content"]["a2a"]["origin"]["platform_id"] == "local" for r in exchanged)
    for agent in (ada, bob):  # both agents are told why, as context (no wake, no paid turn)
        notes = [
            r
            for s in sessions_of(host, agent)
            for r in rows(host, s, "id LIKE 'notice-a2a-limit%'")
        ]
        assert len(notes) == 1 and notes[0]["trigger"] == 0
        assert "not delivered" in notes[0]["content"]["text"]


async def test_the_per_pair_cap_stops_an_exchange_whatever_its_hops(
    make_host: Callable[..., Any], hosts: list[Host]
) -> None:
    host = await make_host(a2a_max_hops=1000, a2a_pair_max_messages=3)
    hosts.append(host)
    pair(host)
    async with ChatListener(host.settings.cli_socket) as chat:
        await say(host.settings.cli_socket, "!to bob chat with me")
        notice = await chat.wait_for(lambda f: "were stopped" in str(f.get("text")))
    assert "the limit is 3" in notice["text"]
    await eventually(lambda: settled(host), timeout_s=20)
    assert len(a2a_rows(host)) == 3


async def test_the_reply_goes_back_to_the_session_that_asked(
    make_host: Callable[..., Any], hosts: list[Host]
) -> None:
    host = await make_host(a2a_max_hops=2)
    hosts.append(host)
    ada, bob = pair(host)
    wire_chat(host.repo, ada, "newer")
    await say(host.settings.cli_socket, "hello", chat="local")
    await say(host.settings.cli_socket, "hello", chat="newer")
    by_chat = {host.repo.messaging_group_by_id(s.messaging_group_id or "").platform_id: s  # type: ignore[union-attr]
               for s in sessions_of(host, ada)}  # fmt: skip
    older, newer = by_chat["local"], by_chat["newer"]
    # The newer chat's session is Ada's most recently active one: the old rule's choice.
    host.repo.touch_session(newer.id, at=utc_now() + timedelta(days=1))
    await say(host.settings.cli_socket, "!to bob what is the capital of France?", chat="local")
    await eventually(lambda: settled(host) and len(a2a_rows(host)) == 2, timeout_s=20)
    answers = rows(host, older, "id LIKE 'a2a-%'")
    assert len(answers) == 1 and "capital of France" in answers[0]["content"]["text"]
    assert answers[0]["platform_id"] == bob.id
    assert rows(host, newer, "channel_type = 'agent'") == []


async def test_files_are_copied_into_the_receivers_inbox_before_the_outbox_goes(
    make_host: Callable[..., Any], hosts: list[Host]
) -> None:
    host = await make_host(a2a_max_hops=2)
    hosts.append(host)
    ada, bob = pair(host)
    await say(host.settings.cli_socket, "!to bob !file report.txt the numbers are fine")
    (ada_session,) = sessions_of(host, ada)

    def delivered_file() -> list[dict[str, Any]]:
        return [
            r for r in rows(host, ada_session, "id LIKE 'a2a-%'") if r["content"].get("attachments")
        ]

    (row,) = await eventually(delivered_file, timeout_s=20)
    (attachment,) = row["content"]["attachments"]
    assert attachment["name"] == "report.txt"
    saved = host.sessions.layout(ada_session).root / attachment["path"]
    assert saved.read_bytes() == b"the numbers are fine"
    (bob_session,) = sessions_of(host, bob)
    await eventually(lambda: list(host.sessions.layout(bob_session).outbox.iterdir()) == [])


async def test_when_the_asking_session_is_gone_peer_affinity_then_the_newest(
    make_host: Callable[..., Any], hosts: list[Host]
) -> None:
    from nanoclaw.sessions.outbound_reader import OutboundRow
    from nanoclaw.sessions.store import InboundMessage

    host = await make_host()
    hosts.append(host)
    ada, bob = pair(host)
    wire_chat(host.repo, ada, "newer")
    await say(host.settings.cli_socket, "hello", chat="local")
    await say(host.settings.cli_socket, "hello", chat="newer")
    first, second = sessions_of(host, ada)
    _, bob_layout = host.sessions.resolve(
        agent_group_id=bob.id, messaging_group_id=None, thread_id=None, mode="agent-shared"
    )
    host.sessions.store.insert_messages(
        bob_layout,
        [
            InboundMessage(id="a2a-x1", kind="chat", content={"text": "from first"},
                           channel_type="agent", platform_id=ada.id, source_session_id=first.id),
            InboundMessage(id="a2a-x2", kind="chat", content={"text": "from second"},
                           channel_type="agent", platform_id=ada.id, source_session_id=second.id),
        ],
    )  # fmt: skip

    def reply_to(ref: str) -> OutboundRow:
        return OutboundRow(id="out-1", seq=1, in_reply_to=ref, timestamp="", deliver_after=None,
                           kind="chat", channel_type="agent", platform_id=ada.id, thread_id=None,
                           content={"text": "answer"})  # fmt: skip

    route = host.delivery.agents
    assert route._target_session(bob_layout, reply_to("a2a-x1"), ada.id)[0].id == first.id
    with host.db.session() as s:  # the asking session is gone
        gone = s.get(SessionRow, first.id)
        assert gone is not None
        gone.status = "closed"
    # Peer affinity: the latest row from Ada naming a live session of hers.
    assert route._target_session(bob_layout, reply_to("a2a-x1"), ada.id)[0].id == second.id
    with host.db.session() as s:
        gone = s.get(SessionRow, second.id)
        assert gone is not None
        gone.status = "closed"
    fallback, _ = route._target_session(bob_layout, reply_to("a2a-x1"), ada.id)
    assert fallback.id not in (first.id, second.id) and fallback.agent_group_id == ada.id


async def test_a_self_addressed_loop_stops_at_the_hop_limit(
    make_host: Callable[..., Any], hosts: list[Host]
) -> None:
    host = await make_host(a2a_max_hops=3)
    hosts.append(host)
    ada = make_agent(host.repo, "Ada")
    wire_chat(host.repo, ada, "local")
    host.repo.add_agent_destination(agent_group_id=ada.id, name="me", target_id=ada.id)
    async with ChatListener(host.settings.cli_socket) as chat:
        await say(host.settings.cli_socket, "!to me talk to yourself")
        await chat.wait_for(lambda f: "were stopped" in str(f.get("text")))
    await eventually(lambda: settled(host), timeout_s=20)
    assert sorted(r["content"]["a2a"]["hop"] for r in a2a_rows(host)) == [1, 2, 3]
