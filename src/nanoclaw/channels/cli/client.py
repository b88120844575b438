"""The terminal side of the CLI channel: one-shot sends and an interactive chat."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanoclaw.channels.cli.protocol import MAX_FRAME_BYTES, encode
from nanoclaw.errors import ChannelError


class HostNotRunningError(ChannelError):
    def __init__(self, socket_path: Path) -> None:
        super().__init__(
            f"the NanoClaw host is not running (no socket at {socket_path}); "
            "start it with `nanoclaw start` (or set it up with `bash nanoclaw.sh`)",
            channel="cli",
        )


class NoReplyError(ChannelError):
    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"no reply within {timeout_s:g} s", channel="cli")


class NotDeliveredError(ChannelError):
    def __init__(self, reason: str, text: str) -> None:
        super().__init__(text, channel="cli")
        self.reason = reason


@dataclass
class Exchange:
    replies: list[dict[str, Any]] = field(default_factory=list)


async def connect(socket_path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        return await asyncio.open_unix_connection(str(socket_path), limit=MAX_FRAME_BYTES + 1)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise HostNotRunningError(socket_path) from exc


async def send_once(
    socket_path: Path, *, chat: str, sender: str, text: str, timeout_s: float
) -> Exchange:
    """Send one message and collect replies until the host says the turn is done."""
    reader, writer = await connect(socket_path)
    exchange = Exchange()
    try:
        writer.write(encode({"type": "message", "chat": chat, "sender": sender, "text": text}))
        await writer.drain()
        waiting: set[str] | None = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while waiting is None or waiting:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise NoReplyError(timeout_s)
            try:
                line = await asyncio.wait_for(reader.readline(), timeout=remaining)
            except TimeoutError as exc:
                raise NoReplyError(timeout_s) from exc
            if not line:
                raise ChannelError("the host closed the connection", channel="cli")
            frame = json.loads(line)
            kind = frame.get("type")
            if kind == "error":
                raise ChannelError(str(frame.get("error")), channel="cli")
            if kind == "notice":
                raise NotDeliveredError(str(frame.get("reason")), str(frame.get("text")))
            if kind == "accepted":
                waiting = set(frame.get("waiting") or [])
            elif kind == "reply":
                exchange.replies.append(frame)
            elif kind == "done" and waiting is not None:
                waiting -= set(frame.get("ids") or [])
        return exchange
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def interactive(socket_path: Path, *, chat: str, sender: str, name: str) -> None:
    """A line-based chat: what you type is sent; replies print as they arrive."""
    reader, writer = await connect(socket_path)
    writer.write(encode({"type": "hello", "chat": chat}))
    await writer.drain()

    async def printer() -> None:
        while True:
            line = await reader.readline()
            if not line:
                print("\n[the host closed the connection]", flush=True)
                return
            frame = json.loads(line)
            kind = frame.get("type")
            if kind == "reply":
                print(f"\r{name}: {frame.get('text', '')}\n> ", end="", flush=True)
            elif kind == "notice":
                print(f"\r[{frame.get('text')}]\n> ", end="", flush=True)
            elif kind == "error":
                print(f"\r[error: {frame.get('error')}]\n> ", end="", flush=True)

    task = asyncio.create_task(printer())
    loop = asyncio.get_running_loop()
    print(f"Chatting in '{chat}' as {sender}. Ctrl-D to leave.\n> ", end="", flush=True)
    try:
        while not task.done():
            text = await loop.run_in_executor(None, sys.stdin.readline)
            if not text:
                break
            if not text.strip():
                print("> ", end="", flush=True)
                continue
            writer.write(
                encode(
                    {"type": "message", "chat": chat, "sender": sender, "text": text.rstrip("\n")}
                )
            )
            await writer.drain()
    finally:
        task.cancel()
        writer.close()
