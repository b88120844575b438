"""The real host with real runner subprocesses, driven through the CLI socket."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from nanoclaw.channels.cli.client import NoReplyError, NotDeliveredError
from nanoclaw.host import Host
from tests.helpers import make_agent, say, texts, until, wire_chat

MOCK = "(mock model, no API key configured) heard: "


async def test_several_chats_at_once_each_get_their_own_answer(host: Host) -> None:
    andy = make_agent(host.repo, "Andy")
    chats = [f"chat{i}" for i in range(4)]
    for chat in chats:
        wire_chat(host.repo, andy, chat)
    results = await asyncio.gather(
        *(say(host.settings.cli_socket, f"hello from {c}", chat=c) for c in chats)
    )
    for chat, exchange in zip(chats, results, strict=True):
        assert texts(exchange) == [f"Andy {MOCK}hello from {chat}"]
        assert {r["chat"] for r in exchange.replies} == {chat}
    assert len(host.repo.sessions()) == 4


async def test_fan_out_answers_from_every_wired_agent(host: Host) -> None:
    andy, bob = make_agent(host.repo, "Andy"), make_agent(host.repo, "Bob")
    wire_chat(host.repo, andy, "room")
    wire_chat(host.repo, bob, "room")
    exchange = await say(host.settings.cli_socket, "hi both", chat="room")
    assert sorted(texts(exchange)) == [f"Andy {MOCK}hi both", f"Bob {MOCK}hi both"]


async def test_accumulated_context_is_seen_with_the_next_engaging_message(host: Host) -> None:
    andy = make_agent(host.repo, "Andy")
    wire_chat(
        host.repo, andy, "room", engage_pattern=r"(?i)\bandy\b", ignored_message_policy="accumulate"
    )
    quiet = await say(host.settings.cli_socket, "the meeting moved to 3pm", chat="room")
    assert quiet.replies == []
    assert host.supervisor.running_sessions() == set()  # context never wakes a runner
    exchange = await say(host.settings.cli_socket, "andy, when is the meeting?", chat="room")
    assert texts(exchange) == [f"Andy {MOCK}the meeting moved to 3pm / andy, when is the meeting?"]


async def test_a_crashed_runner_is_restarted_by_the_next_message_and_nothing_is_lost(
    host: Host,
) -> None:
    andy = make_agent(host.repo, "Andy")
    wire_chat(host.repo, andy, "local")
    with pytest.raises(NoReplyError):
        await say(host.settings.cli_socket, "!crash", timeout=3)
    (session,) = host.repo.sessions()
    for _ in range(100):
        session = host.repo.session(session.id)
        if session.runner_status == "stopped":
            break
        await asyncio.sleep(0.05)
    assert session.runner_status == "stopped" and session.last_exit_code == 70
    exchange = await say(host.settings.cli_socket, "are you back?")
    assert texts(exchange) == [f"Andy {MOCK}are you back?"]
    # The message the crash interrupted is not lost: it waits, pending, for its retry.
    conn = sqlite3.connect(host.sessions.layout(session).inbound_db)
    status, tries, retry_at = conn.execute(
        "SELECT status, tries, process_after FROM messages_in WHERE json_extract(content, '$.text') = '!crash'"
    ).fetchone()
    conn.close()
    assert (status, tries) == ("pending", 1) and retry_at is not None


async def test_unwired_chats_get_a_clear_notice(host: Host) -> None:
    make_agent(host.repo, "Andy")
    with pytest.raises(NotDeliveredError) as info:
        await say(host.settings.cli_socket, "hello?", chat="nowhere")
    assert info.value.reason == "no_agent_wired"
    assert [d.reason for d in host.repo.dropped()] == ["no_agent_wired"]


async def test_malformed_frames_get_an_error_and_the_connection_survives(host: Host) -> None:
    andy = make_agent(host.repo, "Andy")
    wire_chat(host.repo, andy, "local")
    reader, writer = await asyncio.open_unix_connection(str(host.settings.cli_socket))
    for bad in (
        b"not json\n",
        b"[1,2]\n",
        b'{"type":"message","chat":"../x","sender":"a","text":"x"}\n',
        b'{"type":"message","chat":"local","sender":"a","text":""}\n',
    ):
        writer.write(bad)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 5)
        assert b'"error"' in line
    writer.close()
    exchange = await say(host.settings.cli_socket, "still fine?")
    assert texts(exchange) == [f"Andy {MOCK}still fine?"]


async def test_replies_sent_while_no_client_listens_wait_for_the_next_one(host: Host) -> None:
    andy = make_agent(host.repo, "Andy")
    wire_chat(host.repo, andy, "local")
    with pytest.raises(NoReplyError):
        await say(host.settings.cli_socket, "!sleep 0.5", timeout=0.1)
    # Wait for the state (the reply kept in the durable backlog), not for a time.
    await until(lambda: host.cli.backlog.counts("local")[0] == 1)
    reader, writer = await asyncio.open_unix_connection(str(host.settings.cli_socket))
    writer.write(b'{"type":"hello","chat":"local"}\n')
    await writer.drain()
    lines: list[bytes] = []
    while not lines or b'"ready"' not in lines[-1]:
        line = await asyncio.wait_for(reader.readline(), 5)
        if b'"typing"' not in line:  # the typing indicator may go off as we connect
            lines.append(line)
    writer.close()
    assert len(lines) == 2 and b"!sleep 0.5" in lines[0] and b'"ready"' in lines[1]


async def test_the_cli_socket_is_private(host: Host) -> None:
    assert host.settings.cli_socket.stat().st_mode & 0o777 == 0o600


async def test_host_writes_only_inbound_and_runner_only_outbound(host: Host) -> None:
    """One writer per file: the runner's rows are all odd, the host's all even."""
    andy = make_agent(host.repo, "Andy")
    wire_chat(host.repo, andy, "local")
    await say(host.settings.cli_socket, "one")
    await say(host.settings.cli_socket, "two")
    (session,) = host.repo.sessions()
    layout = host.sessions.layout(session)
    conn = sqlite3.connect(layout.inbound_db)
    inbound = [r[0] for r in conn.execute("SELECT seq FROM messages_in")]
    conn.close()
    conn = sqlite3.connect(layout.outbound_db)
    outbound = [r[0] for r in conn.execute("SELECT seq FROM messages_out")]
    conn.close()
    assert inbound == [2, 4] and outbound == [3, 5]
