"""The CLI channel adapter: a Unix socket server; each connection subscribes to one named chat.

Each chat name is its own messaging group (``cli``/<chat>). Replies go to every
connection subscribed to the chat; with none connected they wait in a small backlog
that is flushed to the next client of that chat.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
from collections import OrderedDict, defaultdict, deque
from pathlib import Path
from typing import Any

from nanoclaw.channels.base import (
    ChannelAdapter,
    ChannelSetup,
    InboundEvent,
    InboundMessage,
    OutboundPayload,
    user_id_of,
)
from nanoclaw.channels.cards import card_of
from nanoclaw.channels.cli.protocol import MAX_FRAME_BYTES, encode, parse_client_frame
from nanoclaw.contract.timeutil import now_iso
from nanoclaw.errors import ValidationError
from nanoclaw.ids import new_id

log = logging.getLogger("nanoclaw.channels.cli")

BACKLOG_PER_CHAT = 100
RECENT_DONE_KEPT = 4096  # finished turn ids remembered for clients told about them late
CHANNEL_TYPE = "cli"
DM_PREFIX = "dm-"  # the DM of cli user <handle> is the chat named dm-<handle>


class _Client:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.chat: str | None = None
        self.waiting: set[str] = set()  # inbound message ids this client waits to finish

    async def send(self, frame: dict[str, Any]) -> None:
        self.writer.write(encode(frame))
        await self.writer.drain()


class CliAdapter(ChannelAdapter):
    name = "cli"
    channel_type = CHANNEL_TYPE
    supports_threads = False

    def __init__(self, *, socket_path: Path) -> None:
        self.socket_path = socket_path
        self._server: asyncio.base_events.Server | None = None
        self._setup: ChannelSetup | None = None
        self._clients: set[_Client] = set()
        self._backlog: dict[str, deque[dict[str, Any]]] = defaultdict(
            lambda: deque(maxlen=BACKLOG_PER_CHAT)
        )
        self._counter = itertools.count(1)
        self._recent_done: OrderedDict[str, None] = OrderedDict()

    async def setup(self, setup: ChannelSetup) -> None:
        self._setup = setup
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        if self.socket_path.exists() or self.socket_path.is_symlink():
            self.socket_path.unlink()
        old_umask = os.umask(0o177)  # the socket is created 0600: only this user may talk
        try:
            self._server = await asyncio.start_unix_server(
                self._handle, path=str(self.socket_path), limit=MAX_FRAME_BYTES + 1
            )
        finally:
            os.umask(old_umask)
        self.socket_path.chmod(0o600)
        log.info("CLI channel listening on %s", self.socket_path)

    async def teardown(self) -> None:
        if self._server is not None:
            self._server.close()
            for client in list(self._clients):
                client.writer.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    def is_connected(self) -> bool:
        return self._server is not None

    async def deliver(
        self, platform_id: str, thread_id: str | None, payload: OutboundPayload
    ) -> str | None:
        message_id = f"cli-{next(self._counter)}"
        frame: dict[str, Any] = {
            "type": "reply",
            "chat": platform_id,
            "id": message_id,
            "text": payload.text,
        }
        if payload.files:
            frame["files"] = [f.filename for f in payload.files]
        if payload.content.get("error"):  # the agent's turn failed: the text is an error notice
            frame["failure"] = "agent_error"
            frame["failure_detail"] = str(payload.content["error"])
        elif payload.content.get("failure"):  # a host notice standing in for a lost answer
            frame["failure"] = str(payload.content["failure"])
            frame["failure_detail"] = payload.text
        if "operation" in payload.content:
            frame["operation"] = payload.content["operation"]
        if payload.kind == "card" and isinstance(payload.content.get("card"), dict):
            # "text" holds the numbered fallback; scripts may answer with an action frame.
            frame["card"] = payload.content["card"]
        elif (found := card_of(payload)) is not None:  # an agent's ask_user_question
            frame["card"] = found[0].to_dict()
        targets = [c for c in self._clients if c.chat == platform_id]
        if not targets:
            self._backlog[platform_id].append(frame)
            return message_id
        for client in targets:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await client.send(frame)
        return message_id

    async def open_dm(self, handle: str) -> str | None:
        """A terminal user's DM is the chat ``dm-<handle>`` (``chat --chat dm-<handle>``)."""
        name = re.sub(r"[^A-Za-z0-9_.-]", "-", handle)
        return (DM_PREFIX + name)[:64]

    async def turn_done(self, message_ids: frozenset[str]) -> None:
        """Tell waiting clients that the turn answering their message is complete."""
        # A turn can finish before its client has been told what to wait for (fan-out:
        # one agent answers while another is still being woken), so remember it.
        for message_id in message_ids:
            self._recent_done[message_id] = None
        while len(self._recent_done) > RECENT_DONE_KEPT:
            self._recent_done.popitem(last=False)
        for client in list(self._clients):
            finished = client.waiting & message_ids
            if finished:
                client.waiting -= finished
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await client.send({"type": "done", "ids": sorted(finished)})

    async def _on_action(self, client: _Client, frame: dict[str, Any]) -> None:
        assert self._setup is not None
        text: str | None = None
        if self._setup.on_action is not None:
            text = await self._setup.on_action(
                str(frame["question_id"]),
                str(frame["value"]),
                user_id_of(CHANNEL_TYPE, str(frame["sender"])),
            )
        await client.send(
            {"type": "action_result", "id": frame.get("id"), "text": text or "Not accepted."}
        )

    async def _subscribe(self, client: _Client, chat: str) -> None:
        client.chat = chat
        backlog = self._backlog.pop(chat, None)
        for frame in backlog or ():
            await client.send(frame)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = _Client(writer)
        self._clients.add(client)
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    await client.send({"type": "error", "error": "frame too large"})
                    break
                if not line:
                    break
                if not line.strip():
                    continue
                try:
                    frame = parse_client_frame(line)
                except ValidationError as exc:
                    await client.send({"type": "error", "error": str(exc)})
                    continue
                await self._on_frame(client, frame)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(client)
            with contextlib.suppress(Exception):
                writer.close()

    async def _on_frame(self, client: _Client, frame: dict[str, Any]) -> None:
        chat = str(frame.get("chat", "local"))
        if client.chat != chat:
            await self._subscribe(client, chat)
        if frame["type"] == "hello":
            await client.send({"type": "ready", "chat": chat})
            return
        assert self._setup is not None
        if frame["type"] == "action":
            await self._on_action(client, frame)
            return
        client_id = str(frame.get("id") or new_id("cli"))
        event = InboundEvent(
            channel_type=CHANNEL_TYPE,
            platform_id=chat,
            thread_id=None,
            message=InboundMessage(
                id=client_id,
                text=str(frame["text"]),
                sender=str(frame["sender"]),
                # No name given: keep the one the user record holds (setup's owner name); the
                # agent then sees the handle.
                sender_name=frame.get("sender_name") or None,
                is_mention=True,  # a terminal chat is a direct conversation with the assistant
                is_group=False,
                timestamp=now_iso(),
            ),
        )
        outcome = await self._setup.on_inbound(event)
        if outcome is None:
            return
        waiting = set(outcome.waiting_ids)
        finished = {m for m in waiting if m in self._recent_done}
        client.waiting |= waiting - finished
        await client.send(outcome.to_frame(client_id))  # written before any later "done"
        if finished:
            await client.send({"type": "done", "ids": sorted(finished)})
