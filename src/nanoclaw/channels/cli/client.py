"""The terminal side of the CLI channel for scripts: one connection, one-shot sends, piped lines.

No prompt_toolkit here: pipes and ``-m`` never import it (the interactive chat is ``chat_app``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from nanoclaw.channels.cli.frames import MAX_ACK_IDS, Ack, Hello, Message
from nanoclaw.channels.cli.protocol import MAX_FRAME_BYTES, encode
from nanoclaw.errors import ChannelError


class HostNotRunningError(ChannelError):
    def __init__(self, socket_path: Path) -> None:
        super().__init__(
            f"the NanoClaw host is not running (no socket at {socket_path}); "
            "start it with `nanoclaw start` (or set it up with `bash nanoclaw.sh`)",
            channel="cli",
        )


class HostGoneError(ChannelError):
    """The host closed the connection (it stopped or restarted) before the turn ended."""

    def __init__(self) -> None:
        super().__init__("the NanoClaw host went away before the turn ended", channel="cli")


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
    failed_ids: set[str] = field(default_factory=set)  # from ``done.failed``

    @property
    def failed(self) -> bool:
        """The host ended a turn ``failed``: its reply is a failure notice, not an answer."""
        return bool(self.failed_ids)


class ShownReplies:
    """The reply ids a client has shown, newest last, at most one ack frame's worth.

    A client sends them again in an ``ack`` before its ``hello`` on every reconnect: an ack the
    host lost (it was killed before recording it) then costs no second showing of the reply.
    """

    def __init__(self, kept: int = MAX_ACK_IDS) -> None:
        self.kept = kept
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, reply_id: str) -> bool:
        """Note a reply as shown; False when it had been shown already."""
        if reply_id in self._ids:
            self._ids.move_to_end(reply_id)
            return False
        self._ids[reply_id] = None
        while len(self._ids) > self.kept:
            self._ids.popitem(last=False)
        return True

    def ids(self) -> list[str]:
        return list(self._ids)


class Connection:
    """One socket connection speaking the protocol; frames are read as plain dicts."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, socket_path: Path) -> Connection:
        try:
            reader, writer = await asyncio.open_unix_connection(
                str(socket_path), limit=MAX_FRAME_BYTES + 1
            )
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise HostNotRunningError(socket_path) from exc
        return cls(reader, writer)

    async def send(self, frame: BaseModel) -> None:
        try:
            self.writer.write(encode(frame))
            await self.writer.drain()
        except (ConnectionError, RuntimeError) as exc:  # reset, broken pipe, closed transport
            raise HostGoneError() from exc

    async def next_frame(self) -> dict[str, Any]:
        """The next frame; ``HostGoneError`` when the host closes or resets the connection."""
        try:
            line = await self.reader.readline()
        except (ConnectionError, ValueError) as exc:
            raise HostGoneError() from exc
        if not line:
            raise HostGoneError()
        try:
            frame = json.loads(line)
        except ValueError as exc:
            raise ChannelError(
                f"the host sent a frame that is not JSON: {exc}", channel="cli"
            ) from exc
        if not isinstance(frame, dict):
            raise ChannelError("the host sent a frame that is not an object", channel="cli")
        return frame

    async def ack(self, chat: str, frame: dict[str, Any]) -> None:
        reply_id = frame.get("id")
        if isinstance(reply_id, str) and reply_id:
            with contextlib.suppress(HostGoneError):  # unacked: it comes again next time
                await self.send(Ack(type="ack", chat=chat, ids=[reply_id]))

    async def resume(self, chat: str, shown: ShownReplies) -> None:
        """Follow ``chat`` again after a reconnect: re-acknowledge what was shown, then ``hello``.

        The host handles one connection's frames in order, so the acks are recorded before the
        backlog is replayed.
        """
        if ids := shown.ids():
            await self.send(Ack(type="ack", chat=chat, ids=ids))
        await self.send(Hello(type="hello", chat=chat))

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


async def connect(socket_path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    conn = await Connection.open(socket_path)
    return conn.reader, conn.writer


async def _exchange(
    conn: Connection, *, chat: str, sender: str, text: str, timeout_s: float
) -> Exchange:
    """Send one message and collect (and ack) replies until the host says its turns are done."""
    exchange = Exchange()
    await conn.send(Message(type="message", chat=chat, sender=sender, text=text))
    waiting: set[str] | None = None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while waiting is None or waiting:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise NoReplyError(timeout_s)
        try:
            frame = await asyncio.wait_for(conn.next_frame(), timeout=remaining)
        except TimeoutError as exc:
            raise NoReplyError(timeout_s) from exc
        kind = frame.get("type")
        if kind == "error":
            raise ChannelError(str(frame.get("error")), channel="cli")
        if kind == "notice" and frame.get("reason") != "backlog_dropped":
            raise NotDeliveredError(str(frame.get("reason")), str(frame.get("text")))
        if kind == "accepted":
            waiting = set(frame.get("waiting") or [])
        elif kind == "reply":
            exchange.replies.append(frame)
            await conn.ack(chat, frame)
        elif kind == "done" and waiting is not None:
            finished = set(frame.get("ids") or []) & waiting
            exchange.failed_ids |= finished & set(frame.get("failed") or [])
            waiting -= finished
    return exchange


async def send_once(
    socket_path: Path, *, chat: str, sender: str, text: str, timeout_s: float
) -> Exchange:
    """Send one message; return its turn's replies. Older unread replies stay for the chat."""
    conn = await Connection.open(socket_path)
    try:
        # replay=False: a script gets the answer to its own message, not the chat's backlog.
        await conn.send(Hello(type="hello", chat=chat, replay=False))
        return await _exchange(conn, chat=chat, sender=sender, text=text, timeout_s=timeout_s)
    finally:
        await conn.close()


async def send_each(
    socket_path: Path, *, chat: str, sender: str, texts: list[str], timeout_s: float
) -> list[Exchange]:
    """Send messages one after another over one connection, each waiting for its turn to end."""
    conn = await Connection.open(socket_path)
    exchanges: list[Exchange] = []
    try:
        await conn.send(Hello(type="hello", chat=chat, replay=False))
        for text in texts:
            exchanges.append(
                await _exchange(conn, chat=chat, sender=sender, text=text, timeout_s=timeout_s)
            )
        return exchanges
    finally:
        await conn.close()
