"""Bad input at the terminal channel's door (#10.7): every malformed frame gets an ``error`` frame,
the connection stays usable, nothing is routed, and a burst of 500 connections is served."""

from __future__ import annotations

import asyncio
import json
import resource
from pathlib import Path
from typing import Any

import pytest

from nanoclaw.channels.cli.protocol import MAX_FRAME_BYTES
from nanoclaw.host import Host
from tests.helpers import make_agent, wire_chat

BURST_CONNECTIONS = 500

MALFORMED: list[tuple[str, bytes, str]] = [
    # (what, the raw line without its newline, a word the error must contain)
    ("lone surrogate", b'{"type":"message","sender":"al","text":"hi \\ud800 there"}', "Unicode"),
    ("lone low surrogate", b'{"type":"message","sender":"al","text":"\\udc00"}', "Unicode"),
    ("invalid UTF-8", b'{"type":"message","sender":"al","text":"\xff\xfe"}', "Unicode"),
    ("200,000-deep JSON", b"[" * 200_000 + b"]" * 200_000, "nested"),
    (
        "deep object",
        b'{"type":"message","sender":"al","text":' + b'{"a":' * 200_000 + b"1" + b"}" * 200_001,
        "nested",
    ),
    (
        "non-string sender_name",
        b'{"type":"message","sender":"al","text":"x","sender_name":5}',
        "sender_name",
    ),
    (
        "sender_name object",
        b'{"type":"message","sender":"al","text":"x","sender_name":{"a":1}}',
        "sender_name",
    ),
    ("non-string sender", b'{"type":"message","sender":7,"text":"x"}', "sender"),
    ("non-string text", b'{"type":"message","sender":"al","text":["x"]}', "text"),
    (
        "oversized",
        b'{"type":"message","sender":"al","text":"' + b"x" * (MAX_FRAME_BYTES + 10) + b'"}',
        "too large",
    ),
    ("not an object: list", b"[1, 2]", "JSON object"),
    ("not an object: string", b'"hello"', "JSON object"),
    ("not an object: number", b"42", "JSON object"),
    ("unknown type", b'{"type":"launch","chat":"local"}', "unknown frame type"),
    ("no type", b'{"chat":"local"}', "type"),
    ("bad JSON", b'{"type": "message", ', "JSON"),
    ("empty text", b'{"type":"message","sender":"al","text":"   "}', "non-empty"),
    (
        "text too long",
        b'{"type":"message","sender":"al","text":"' + b"y" * 200_001 + b'"}',
        "too long",
    ),
    ("bad chat", b'{"type":"hello","chat":"../../etc"}', "chat"),
    ("unknown field", b'{"type":"hello","chat":"local","admin":true}', "admin"),
    ("ack of nothing", b'{"type":"ack","chat":"local","ids":[]}', "ids"),
]


async def _next(reader: asyncio.StreamReader, within_s: float = 15.0) -> dict[str, Any]:
    line = await asyncio.wait_for(reader.readline(), timeout=within_s)
    assert line, "the host closed the connection"
    frame = json.loads(line)
    assert isinstance(frame, dict)
    return frame


@pytest.fixture
async def wired_host(host: Host) -> Host:
    agent = make_agent(host.repo, "Robin")
    wire_chat(host.repo, agent, "local")
    return host


async def test_every_malformed_frame_gets_an_error_and_the_connection_stays_usable(
    wired_host: Host,
) -> None:
    reader, writer = await asyncio.open_unix_connection(
        str(wired_host.settings.cli_socket), limit=2 * MAX_FRAME_BYTES
    )
    try:
        for what, line, word in MALFORMED:
            writer.write(line + b"\n")
            await writer.drain()
            frame = await _next(reader)
            assert frame["type"] == "error", (what, frame)
            assert word.lower() in frame["error"].lower(), (what, frame)
        # The same connection still works: a valid message is answered.
        writer.write(
            b'{"type":"message","chat":"local","sender":"al","text":"still here","id":"ok1"}\n'
        )
        await writer.drain()
        seen: list[dict[str, Any]] = []
        while not any(f["type"] == "reply" for f in seen):
            seen.append(await _next(reader, within_s=30))
    finally:
        writer.close()
    accepted = [f for f in seen if f["type"] == "accepted"]
    assert [f["id"] for f in accepted] == ["ok1"]  # nothing malformed was ever accepted
    (reply,) = [f for f in seen if f["type"] == "reply"]
    assert reply["text"].endswith("heard: still here")  # the one message the agent ever got
    assert reply["sender_name"] == "Robin"


async def test_a_lone_surrogate_is_refused_and_never_reaches_an_agent(wired_host: Host) -> None:
    reader, writer = await asyncio.open_unix_connection(str(wired_host.settings.cli_socket))
    try:
        writer.write(
            b'{"type":"message","chat":"local","sender":"al","text":"a\\ud83d","id":"s1"}\n'
        )
        writer.write(
            b'{"type":"message","chat":"local","sender":"al","text":"ok \\ud83d\\ude00","id":"s2"}\n'
        )
        await writer.drain()
        first = await _next(reader)
        assert first["type"] == "error" and "Unicode" in first["error"]
        frames = [await _next(reader, within_s=30)]
        while frames[-1]["type"] != "reply":
            frames.append(await _next(reader, within_s=30))
    finally:
        writer.close()
    assert [f["id"] for f in frames if f["type"] == "accepted"] == ["s2"]
    assert frames[-1]["text"].endswith("heard: ok 😀")  # a proper pair is a character


async def _burst(socket_path: Path, n: int) -> tuple[int, list[str]]:
    """Open ``n`` connections at once (all connect() calls before any accept), hello on each."""

    async def one(i: int) -> bool:
        try:
            reader, writer = await asyncio.open_unix_connection(str(socket_path))
        except OSError as exc:
            failures.append(f"connect: {exc!r}")
            return False
        try:
            writer.write(json.dumps({"type": "hello", "chat": f"burst{i % 7}"}).encode() + b"\n")
            await writer.drain()
            frame = await _next(reader, within_s=60)
            return frame == {"type": "ready", "chat": f"burst{i % 7}"}
        except (OSError, AssertionError, TimeoutError) as exc:
            failures.append(f"hello: {exc!r}")
            return False
        finally:
            writer.close()

    failures: list[str] = []
    results = await asyncio.gather(*(one(i) for i in range(n)))
    return sum(results), failures


@pytest.fixture
def enough_fds() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 4 * BURST_CONNECTIONS
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


async def test_a_burst_of_500_simultaneous_connections_is_served(
    wired_host: Host, enough_fds: None
) -> None:
    served, failures = await _burst(wired_host.settings.cli_socket, BURST_CONNECTIONS)
    assert failures == []
    assert served == BURST_CONNECTIONS


async def test_the_burst_harness_detects_a_short_listen_queue(
    short_dir: Path, enough_fds: None
) -> None:
    """Positive control: the same burst against asyncio's default backlog (100) loses connections."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        chat = json.loads(line)["chat"]
        writer.write(json.dumps({"type": "ready", "chat": chat}).encode() + b"\n")
        await writer.drain()
        writer.close()

    path = short_dir / "naive.sock"
    server = await asyncio.start_unix_server(answer, path=str(path))  # backlog=100
    try:
        served, failures = await _burst(path, BURST_CONNECTIONS)
    finally:
        server.close()
    assert served < BURST_CONNECTIONS and failures
