"""The terminal channel keeps every reply until a client acknowledges it, and waits for no client."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from nanoclaw.channels.base import ChannelSetup, InboundEvent, OutboundPayload, RouteReceipt
from nanoclaw.channels.cli.adapter import CliAdapter
from nanoclaw.channels.cli.backlog import CliBacklog
from nanoclaw.channels.cli.client import Connection, ShownReplies
from nanoclaw.channels.cli.frames import MAX_ACK_IDS
from tests.chat_client import ChatClient
from tests.helpers import shared_executors, until


async def _nothing_routed(event: InboundEvent) -> RouteReceipt:
    return RouteReceipt(delivered_to=0, waiting_ids=(), reason="no_agent_wired", text="none")


@pytest.fixture
async def adapter(short_dir: Path, cli_backlog: CliBacklog) -> AsyncIterator[CliAdapter]:
    instance = CliAdapter(
        executors=shared_executors(),
        socket_path=short_dir / "cli.sock",
        backlog=cli_backlog,
        client_buffer_bytes=256 * 1024,
    )
    await instance.setup(ChannelSetup(on_inbound=_nothing_routed))
    try:
        yield instance
    finally:
        await instance.teardown()


def _say(text: str) -> OutboundPayload:
    return OutboundPayload("chat", {"text": text}, sender_name="Robin")


async def test_replies_with_no_client_are_kept_and_shown_in_order_after_a_restart(
    adapter: CliAdapter, cli_backlog: CliBacklog, short_dir: Path
) -> None:
    for n in range(130):
        await adapter.deliver("local", None, _say(f"r{n}"))
    await adapter.teardown()  # the host stops; a new one opens the same central DB
    restarted = CliAdapter(
        executors=shared_executors(), socket_path=short_dir / "cli2.sock", backlog=cli_backlog
    )
    await restarted.setup(ChannelSetup(on_inbound=_nothing_routed))
    try:
        async with ChatClient(restarted.socket_path, "local", "al") as client:
            replies = [f for f in client.frames if f["type"] == "reply"]
            # ``ready`` comes after the replayed backlog, so all 130 are already here.
            assert [f["text"] for f in replies] == [f"r{n}" for n in range(130)]
            assert {f["sender_name"] for f in replies} == {"Robin"}
            assert len({f["id"] for f in replies}) == 130
    finally:
        await restarted.teardown()


async def test_an_acked_reply_is_delivered_and_an_unacked_one_comes_once_per_reconnect(
    adapter: CliAdapter, cli_backlog: CliBacklog
) -> None:
    first = await adapter.deliver("local", None, _say("one"))
    second = await adapter.deliver("local", None, _say("two"))
    async with ChatClient(adapter.socket_path, "local", "al", ack=False) as client:
        assert client.replies() == ["one", "two"]
        await client._send({"type": "ack", "chat": "local", "ids": [first]})
    await until(lambda: cli_backlog.counts("local") == (1, 1))
    for _ in range(2):  # each reconnect shows the unacknowledged reply exactly once
        async with ChatClient(adapter.socket_path, "local", "al", ack=False) as client:
            assert [(f["id"], f["text"]) for f in client.frames if f["type"] == "reply"] == [
                (second, "two")
            ]
    async with ChatClient(adapter.socket_path, "local", "al", ack=False) as client:
        await client._send({"type": "ack", "chat": "local", "ids": [second]})
        await until(lambda: cli_backlog.counts("local") == (0, 2))
    async with ChatClient(adapter.socket_path, "local", "al") as client:
        assert client.replies() == []


async def test_a_live_reply_is_shown_once_even_while_the_backlog_replays(
    adapter: CliAdapter,
) -> None:
    for n in range(600):  # more than one replay page
        await adapter.deliver("local", None, _say(f"old{n}"))
    async with ChatClient(adapter.socket_path, "local", "al") as client:
        await adapter.deliver("local", None, _say("live"))
        await client.reply_containing("live")
        assert client.replies() == [f"old{n}" for n in range(600)] + ["live"]


async def test_the_backlog_is_bounded_and_the_next_client_is_told_how_many_were_dropped(
    short_dir: Path, cli_backlog: CliBacklog
) -> None:
    bounded = CliBacklog(db=cli_backlog.db, per_chat_max=5)
    adapter = CliAdapter(
        executors=shared_executors(), socket_path=short_dir / "b.sock", backlog=bounded
    )
    await adapter.setup(ChannelSetup(on_inbound=_nothing_routed))
    try:
        for n in range(8):
            await adapter.deliver("local", None, _say(f"r{n}"))
        async with ChatClient(adapter.socket_path, "local", "al") as client:
            (notice,) = [f for f in client.frames if f["type"] == "notice"]
            assert notice["reason"] == "backlog_dropped" and notice["count"] == 3
            assert "3 older replies" in notice["text"]
            assert client.replies() == ["r3", "r4", "r5", "r6", "r7"]
        async with ChatClient(adapter.socket_path, "local", "al") as client:
            assert not [f for f in client.frames if f["type"] == "notice"]  # told once
    finally:
        await adapter.teardown()


async def test_a_script_hello_without_replay_leaves_the_backlog_for_the_chat(
    adapter: CliAdapter, cli_backlog: CliBacklog
) -> None:
    await adapter.deliver("local", None, _say("for the person"))
    reader, writer = await asyncio.open_unix_connection(str(adapter.socket_path))
    writer.write(b'{"type":"hello","chat":"local","replay":false}\n')
    await writer.drain()
    assert json.loads(await reader.readline()) == {"type": "ready", "chat": "local"}
    writer.close()
    assert cli_backlog.counts("local") == (1, 0)


async def test_a_client_that_never_reads_is_cut_off_and_stalls_no_other_chat(
    adapter: CliAdapter, cli_backlog: CliBacklog
) -> None:
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(str(adapter.socket_path))
    stuck.sendall(b'{"type":"hello","chat":"stuck"}\n')  # and then it never reads
    await until(lambda: adapter.clients_of("stuck") == 1)
    try:
        async with ChatClient(adapter.socket_path, "other", "bo") as other:
            big = "x" * 32_768
            for n in range(60):  # ~2 MB for a client that reads nothing; each call returns
                await adapter.deliver("stuck", None, _say(f"{n} {big}"))
            await adapter.deliver("other", None, _say("for the other chat"))
            await other.reply_containing("for the other chat")
            # The stuck client was disconnected once its bounded buffer filled up ...
            await until(lambda: adapter.clients_of("stuck") == 0)
        # ... and every one of its replies is kept for it, in order.
        assert cli_backlog.counts("stuck") == (60, 0)
        async with ChatClient(adapter.socket_path, "stuck", "al") as again:
            assert [t.split(" ")[0] for t in again.replies()] == [str(n) for n in range(60)]
    finally:
        stuck.close()


async def test_an_outbound_row_re_sent_after_a_crash_is_stored_and_shown_once(
    adapter: CliAdapter, cli_backlog: CliBacklog
) -> None:
    keyed = OutboundPayload("chat", {"text": "once"}, sender_name="Robin", delivery_key="s1/7")
    async with ChatClient(adapter.socket_path, "local", "al", ack=False) as client:
        first = await adapter.deliver("local", None, keyed)
        await client.wait_for(lambda f: f.get("type") == "reply")
        # The next host sends the same outbound row again: it names the same reply, pushes nothing.
        again = await adapter.deliver("local", None, keyed)
        other = await adapter.deliver("local", None, _say("next"))
        await client.wait_for(lambda f: f.get("text") == "next")
        assert again == first
        assert [(f["id"], f["text"]) for f in client.frames if f["type"] == "reply"] == [
            (first, "once"),
            (other, "next"),
        ]
    assert cli_backlog.counts("local") == (2, 0)


async def test_a_client_resuming_with_its_shown_replies_gets_none_of_them_again(
    adapter: CliAdapter, cli_backlog: CliBacklog
) -> None:
    shown = ShownReplies()
    for text in ("one", "two"):
        await adapter.deliver("local", None, _say(text))
    # Shown, but the acks were lost with the host (this client sends none).
    async with ChatClient(adapter.socket_path, "local", "al", ack=False) as client:
        for frame in client.frames:
            if frame["type"] == "reply":
                assert shown.add(frame["id"])
    assert cli_backlog.counts("local") == (2, 0)
    await adapter.deliver("local", None, _say("three"))
    conn = await Connection.open(adapter.socket_path)
    try:
        await conn.resume("local", shown)
        frames: list[dict[str, Any]] = []
        while (frame := await conn.next_frame())["type"] != "ready":
            frames.append(frame)
    finally:
        await conn.close()
    assert [f["text"] for f in frames if f["type"] == "reply"] == ["three"]
    assert cli_backlog.counts("local") == (1, 2)


def test_shown_replies_keep_one_ack_frames_worth_newest_last() -> None:
    shown = ShownReplies()
    for n in range(MAX_ACK_IDS + 5):
        assert shown.add(f"cli-{n}")
    assert not shown.add(f"cli-{MAX_ACK_IDS + 4}")
    ids = shown.ids()
    assert len(ids) == MAX_ACK_IDS
    assert ids[0] == "cli-5" and ids[-1] == f"cli-{MAX_ACK_IDS + 4}"


async def test_a_reply_stored_after_its_send_timed_out_still_reaches_the_connected_client(
    adapter: CliAdapter, cli_backlog: CliBacklog, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    add = cli_backlog.add

    def slow_add(
        chat: str, frame_json: str, *, delivery_key: str | None = None
    ) -> tuple[int, bool]:
        gate.wait(timeout=30)  # the central thread is held up (another process's write lock)
        return add(chat, frame_json, delivery_key=delivery_key)

    monkeypatch.setattr(cli_backlog, "add", slow_add)
    keyed = OutboundPayload("chat", {"text": "late"}, sender_name="Robin", delivery_key="s1/9")
    async with ChatClient(adapter.socket_path, "local", "al", ack=False) as client:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):  # the delivery loop's send timeout
                await adapter.deliver("local", None, keyed)
        gate.set()  # the stored row commits after its caller gave up
        await client.wait_for(lambda f: f.get("text") == "late")
        # The delivery loop retries: the row is known, nothing is pushed twice.
        again = await adapter.deliver("local", None, keyed)
        await adapter.deliver("local", None, _say("after"))
        await client.wait_for(lambda f: f.get("text") == "after")
        replies = [(f["id"], f["text"]) for f in client.frames if f["type"] == "reply"]
    assert [text for _, text in replies] == ["late", "after"]
    assert replies[0][0] == again
