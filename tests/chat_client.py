"""A persistent CLI-channel client for tests: one named chat, one handle, every frame recorded."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nanoclaw.channels.cli.protocol import MAX_FRAME_BYTES, encode

_ids = itertools.count(1)


class ChatClient:
    """Speaks the real socket protocol, like ``nanoclaw chat --chat <chat> --as <handle>``."""

    def __init__(self, socket_path: Path, chat: str, handle: str, *, ack: bool = True) -> None:
        self.socket_path = socket_path
        self.ack = ack  # acknowledge each reply, as ``nanoclaw chat`` does once it is shown
        self.chat = chat
        self.handle = handle
        self.frames: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ChatClient:
        self._reader, self._writer = await asyncio.open_unix_connection(
            str(self.socket_path), limit=MAX_FRAME_BYTES + 1
        )
        self._task = asyncio.create_task(self._read())
        await self._send({"type": "hello", "chat": self.chat})
        await self.wait_for(lambda f: f.get("type") == "ready")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._writer is not None:
            self._writer.close()

    async def _read(self) -> None:
        assert self._reader is not None
        while True:
            line = await self._reader.readline()
            if not line:
                return
            frame = json.loads(line)
            self.frames.append(frame)
            self._changed.set()
            if self.ack and frame.get("type") == "reply" and self._writer is not None:
                ids = [frame["id"]]
                self._writer.write(encode({"type": "ack", "chat": self.chat, "ids": ids}))

    async def _send(self, frame: dict[str, Any]) -> None:
        assert self._writer is not None
        self._writer.write(encode(frame))
        await self._writer.drain()

    async def say(self, text: str) -> str:
        client_id = f"t{next(_ids)}"
        await self._send(
            {
                "type": "message",
                "chat": self.chat,
                "sender": self.handle,
                "text": text,
                "id": client_id,
            }
        )
        return client_id

    async def click(self, question_id: str, value: str) -> dict[str, Any]:
        """Answer a card with an action frame (a button click)."""
        client_id = f"a{next(_ids)}"
        start = len(self.frames)
        await self._send(
            {
                "type": "action",
                "chat": self.chat,
                "sender": self.handle,
                "question_id": question_id,
                "value": value,
                "id": client_id,
            }
        )
        return await self.wait_for(lambda f: f.get("type") == "action_result", start=start)

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], *, start: int = 0, within_s: float = 15.0
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while True:
            for frame in self.frames[start:]:
                if predicate(frame):
                    return frame
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no matching frame in {within_s}s; got {self.frames[start:]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=remaining)

    async def reply_containing(
        self, text: str, *, start: int = 0, within_s: float = 15.0
    ) -> dict[str, Any]:
        return await self.wait_for(
            lambda f: f.get("type") == "reply" and text in str(f.get("text")),
            start=start,
            within_s=within_s,
        )

    async def card(self, *, start: int = 0, within_s: float = 15.0) -> dict[str, Any]:
        frame = await self.wait_for(
            lambda f: f.get("type") == "reply" and "card" in f, start=start, within_s=within_s
        )
        return dict(frame["card"])

    def replies(self) -> list[str]:
        return [str(f.get("text")) for f in self.frames if f.get("type") == "reply"]
