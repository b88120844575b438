"""The CLI channel adapter: a Unix socket server; each connection subscribes to one named chat.

Each chat name is its own messaging group (``cli``/<chat>). Invariants:

- Every reply is stored in the durable backlog (``CliBacklog``) before any client sees it, and
  stays there until a client acknowledges it; a client opening a chat gets its unacknowledged
  replies in order, each at most once per connection.
- The host never waits for a client: frames are written without awaiting the socket, and a
  client whose unread output passes ``client_buffer_bytes`` is disconnected (its replies stay in
  the backlog). So a client that stops reading delays nothing else, on any chat or channel.
- Every malformed frame gets an ``error`` frame and the connection stays usable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path

from pydantic import BaseModel

from nanoclaw.channels.base import (
    ChannelAdapter,
    ChannelSetup,
    InboundEvent,
    InboundMessage,
    OutboundPayload,
    ReplyTo,
    user_id_of,
)
from nanoclaw.channels.cards import card_of
from nanoclaw.channels.cli.backlog import CliBacklog, reply_id, row_id_of
from nanoclaw.channels.cli.frames import (
    Ack,
    Action,
    ActionResult,
    CardFrame,
    Done,
    Error,
    Hello,
    Message,
    Notice,
    Ready,
    Reply,
    Typing,
)
from nanoclaw.channels.cli.protocol import MAX_FRAME_BYTES, encode, parse_client_frame
from nanoclaw.contract.timeutil import now_iso
from nanoclaw.errors import ValidationError
from nanoclaw.executors import Executors
from nanoclaw.ids import new_id

log = logging.getLogger("nanoclaw.channels.cli")

RECENT_DONE_KEPT = 4096  # finished turn ids remembered for clients told about them late
CHANNEL_TYPE = "cli"
SAID_KEPT = 1000  # recent messages (both ways) a client can reply to by id
# Of each remembered message, the text a reply quotes: the quote is context for the agent (the
# message itself is in its history), and an agent's 100 KB replies would otherwise be kept whole.
SAID_TEXT_KEPT_CHARS = 2000
DM_PREFIX = "dm-"  # the DM of cli user <handle> is the chat named dm-<handle>
LISTEN_BACKLOG = 1024  # pending connections the kernel queues (a burst of 500 is served)
DEFAULT_CLIENT_BUFFER_BYTES = 1024 * 1024
CLIENT_STALL_S = 30.0  # a backlog replay waits this long for a client to read a page
READ_CHUNK_BYTES = 64 * 1024


class _Client:
    """One connection: the chat it follows and what the host has queued for it."""

    def __init__(self, writer: asyncio.StreamWriter, buffer_max_bytes: int) -> None:
        self.writer = writer
        self.buffer_max_bytes = buffer_max_bytes
        self.chat: str | None = None
        self.waiting: set[str] = set()  # inbound message ids this client waits to finish
        self.closed = False
        # While the chat's backlog is replayed, live replies wait here (row id, frame) so that
        # order holds and none is sent twice.
        self.replaying = False
        self.held: list[tuple[int, bytes]] = []
        self.replay: asyncio.Task[None] | None = None
        self.ready_after_replay = False  # a hello arrived: answer ``ready`` once replayed

    def send(self, frame: BaseModel | bytes) -> None:
        """Queue a frame without waiting; disconnect the client once too much is unread."""
        if self.closed:
            return
        transport = self.writer.transport
        if transport.is_closing():
            self.closed = True
            return
        self.writer.write(frame if isinstance(frame, bytes) else encode(frame))
        if transport.get_write_buffer_size() > self.buffer_max_bytes:
            log.warning(
                "CLI client of chat %s is not reading (%d bytes unread): disconnected; "
                "its replies stay in the backlog",
                self.chat,
                transport.get_write_buffer_size(),
            )
            self.close()

    def push_reply(self, row_id: int, frame: bytes) -> None:
        if self.replaying:
            self.held.append((row_id, frame))
        else:
            self.send(frame)

    def close(self) -> None:
        self.closed = True
        self.writer.transport.abort()


def _reply_bytes(row_id: int, stored: str) -> bytes:
    body = json.loads(stored)
    body["id"] = reply_id(row_id)
    return encode(body)


async def _lines(reader: asyncio.StreamReader) -> AsyncIterator[bytes | None]:
    """Yield each line (without its newline); ``None`` for a line over the frame limit, skipped."""
    buffer = bytearray()
    skipping = False
    while True:
        chunk = await reader.read(READ_CHUNK_BYTES)
        if not chunk:
            return
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                if not skipping:
                    buffer += chunk[start:]
                    if len(buffer) > MAX_FRAME_BYTES:
                        buffer.clear()
                        skipping = True
                        yield None
                break
            if skipping:
                skipping = False
            else:
                buffer += chunk[start:end]
                line = bytes(buffer)
                buffer.clear()
                yield None if len(line) > MAX_FRAME_BYTES else line
            start = end + 1


class CliAdapter(ChannelAdapter):
    name = "cli"
    channel_type = CHANNEL_TYPE
    supports_threads = False

    def __init__(
        self,
        *,
        executors: Executors,
        socket_path: Path,
        backlog: CliBacklog,
        client_buffer_bytes: int = DEFAULT_CLIENT_BUFFER_BYTES,
        stall_s: float = CLIENT_STALL_S,
    ) -> None:
        self.executors = executors
        self.socket_path = socket_path
        self.backlog = backlog
        self.client_buffer_bytes = client_buffer_bytes
        self.stall_s = stall_s
        self._server: asyncio.base_events.Server | None = None
        self._setup: ChannelSetup | None = None
        self._clients: set[_Client] = set()
        self._recent_done: OrderedDict[str, bool] = OrderedDict()  # id → ended failed
        # Recent messages both ways, by id: what a client's reply_to names (text, sender).
        self._said: OrderedDict[tuple[str, str], tuple[str, str]] = OrderedDict()

    def _remember(self, chat: str, message_id: str, text: str, sender: str) -> None:
        if len(text) > SAID_TEXT_KEPT_CHARS:
            text = text[: SAID_TEXT_KEPT_CHARS - 1] + "…"
        self._said[(chat, message_id)] = (text, sender)
        while len(self._said) > SAID_KEPT:
            self._said.popitem(last=False)

    async def setup(self, setup: ChannelSetup) -> None:
        self._setup = setup
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        if self.socket_path.exists() or self.socket_path.is_symlink():
            self.socket_path.unlink()
        old_umask = os.umask(0o177)  # the socket is created 0600: only this user may talk
        try:
            self._server = await asyncio.start_unix_server(
                self._handle, path=str(self.socket_path), backlog=LISTEN_BACKLOG
            )
        finally:
            os.umask(old_umask)
        self.socket_path.chmod(0o600)
        log.info("CLI channel listening on %s", self.socket_path)

    async def teardown(self) -> None:
        if self._server is not None:
            self._server.close()
            for client in list(self._clients):
                if client.replay is not None:
                    client.replay.cancel()
                client.writer.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    def is_connected(self) -> bool:
        return self._server is not None

    def clients_of(self, chat: str) -> int:
        """How many open connections follow ``chat`` (for status and tests)."""
        return sum(1 for c in self._clients if c.chat == chat and not c.closed)

    # -- host → clients ---------------------------------------------------------------------------
    async def deliver(
        self, platform_id: str, thread_id: str | None, payload: OutboundPayload
    ) -> str | None:
        reply = self._reply_of(platform_id, payload)
        stored = reply.model_dump_json(exclude_none=True, exclude={"id"})
        # Stored and pushed as one step that a cancelled caller (the send timeout) does not cut
        # in two: a row stored here always reaches the clients connected now, so a retry that
        # finds its delivery key stored pushes nothing twice and leaves nothing unshown.
        step = asyncio.ensure_future(self._store_and_push(platform_id, payload, stored))
        step.add_done_callback(_retrieve)
        return await asyncio.shield(step)

    async def _store_and_push(
        self, platform_id: str, payload: OutboundPayload, stored: str
    ) -> str | None:
        row_id, new = await self.executors.central.run(
            self.backlog.add, platform_id, stored, delivery_key=payload.delivery_key
        )
        self._remember(
            platform_id, reply_id(row_id), payload.text, payload.sender_name or "assistant"
        )
        if not new:  # stored by an earlier host: its clients replay it from the backlog
            return reply_id(row_id)
        frame = _reply_bytes(row_id, stored)
        for client in list(self._clients):
            if client.chat == platform_id:
                client.push_reply(row_id, frame)
        return reply_id(row_id)

    @staticmethod
    def _reply_of(chat: str, payload: OutboundPayload) -> Reply:
        content = payload.content
        card: CardFrame | None = None
        if payload.kind == "card" and isinstance(content.get("card"), dict):
            # "text" holds the numbered fallback; clients answer with an action frame.
            card = CardFrame.model_validate(content["card"], strict=False)
        elif (found := card_of(payload)) is not None:  # an agent's ask_user_question
            card = CardFrame.model_validate(found[0].to_dict(), strict=False)
        operation = content.get("operation")
        failure, failure_detail = _failure_of(payload)
        return Reply(
            chat=chat,
            id="",
            text=payload.text,
            sender_name=payload.sender_name,
            files=[f.filename for f in payload.files] or None,
            card=card,
            operation=str(operation) if operation else None,
            message_id=str(content["messageId"]) if operation and "messageId" in content else None,
            emoji=str(content["emoji"]) if operation and "emoji" in content else None,
            failure=failure,
            failure_detail=failure_detail,
        )

    async def set_typing(self, platform_id: str, thread_id: str | None, on: bool) -> None:
        for client in list(self._clients):
            if client.chat == platform_id:
                client.send(Typing(chat=platform_id, on=on))

    async def open_dm(self, handle: str) -> str | None:
        """A terminal user's DM is the chat ``dm-<handle>`` (``chat --chat dm-<handle>``)."""
        name = re.sub(r"[^A-Za-z0-9_.-]", "-", handle)
        return (DM_PREFIX + name)[:64]

    async def turn_done(
        self, message_ids: frozenset[str], *, failed: frozenset[str] = frozenset()
    ) -> None:
        """Tell waiting clients that the turn answering their message is complete (or failed)."""
        # A turn can finish before its client has been told what to wait for (fan-out:
        # one agent answers while another is still being woken), so remember it.
        for message_id in message_ids:
            self._recent_done[message_id] = message_id in failed
        while len(self._recent_done) > RECENT_DONE_KEPT:
            self._recent_done.popitem(last=False)
        for client in list(self._clients):
            finished = client.waiting & message_ids
            if finished:
                client.waiting -= finished
                client.send(Done(ids=sorted(finished), failed=sorted(finished & failed) or None))

    # -- subscription and backlog replay ----------------------------------------------------------
    @staticmethod
    def _follow_live(client: _Client, chat: str) -> None:
        if client.replay is not None:
            client.replay.cancel()
        client.chat, client.replaying, client.held = chat, False, []

    def _subscribe(self, client: _Client, chat: str) -> None:
        """Follow ``chat`` after replaying its backlog; answer ``ready`` once replayed."""
        self._follow_live(client, chat)
        client.replaying = True
        client.ready_after_replay = True
        client.replay = asyncio.create_task(self._replay(client, chat))

    async def _replay(self, client: _Client, chat: str) -> None:
        sent: set[int] = set()
        try:
            dropped = await self.executors.central.run(self.backlog.take_dropped, chat)
            if dropped:
                client.send(
                    Notice(
                        reason="backlog_dropped",
                        count=dropped,
                        text=(
                            f"{dropped} older replies in this chat were dropped unread: "
                            f"it keeps at most {self.backlog.per_chat_max}."
                        ),
                    )
                )
            after = 0
            while not client.closed:
                page = await self.executors.central.run(self.backlog.pending, chat, after_id=after)
                if not page:
                    break
                for stored in page:
                    client.writer.write(_reply_bytes(stored.id, stored.frame))
                    sent.add(stored.id)
                after = page[-1].id
                await asyncio.wait_for(client.writer.drain(), timeout=self.stall_s)
        except (ConnectionError, TimeoutError):
            log.warning("CLI client of chat %s stopped reading its backlog: disconnected", chat)
            client.close()
            return
        except Exception:  # the backlog could not be read: the client reconnects and tries again
            log.exception("CLI backlog replay for chat %s failed: client disconnected", chat)
            client.close()
            return
        if client.chat != chat:  # a newer subscription owns the held frames now
            return
        client.replaying = False
        held, client.held = client.held, []
        for row_id, frame in sorted(held, key=lambda item: item[0]):
            if row_id not in sent:
                client.send(frame)
        if client.ready_after_replay:
            client.ready_after_replay = False
            client.send(Ready(chat=chat))

    # -- client → host ----------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = _Client(writer, self.client_buffer_bytes)
        self._clients.add(client)
        try:
            async for line in _lines(reader):
                if client.closed:
                    break
                if line is None:
                    too_large = f"frame too large (the limit is {MAX_FRAME_BYTES} bytes)"
                    client.send(Error(error=too_large, field="frame"))
                    continue
                if not line.strip():
                    continue
                try:
                    frame = parse_client_frame(line)
                except ValidationError as exc:
                    client.send(Error(error=str(exc), field=exc.field))
                    continue
                await self._on_frame(client, frame)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(client)
            if client.replay is not None:
                client.replay.cancel()
            with contextlib.suppress(Exception):
                writer.close()

    async def _on_frame(self, client: _Client, frame: Hello | Message | Action | Ack) -> None:
        if isinstance(frame, Ack):
            await self._on_ack(client, frame)
            return
        if isinstance(frame, Hello):
            if not frame.replay:
                self._follow_live(client, frame.chat)
                client.send(Ready(chat=frame.chat))
            elif client.chat != frame.chat:
                self._subscribe(client, frame.chat)
            elif client.replaying:
                client.ready_after_replay = True
            else:
                client.send(Ready(chat=frame.chat))
            return
        if client.chat != frame.chat:
            # Only a hello replays the backlog: a bare message (a script, a benchmark) follows the
            # chat from now on, so the first reply it reads answers its own message.
            self._follow_live(client, frame.chat)
        assert self._setup is not None
        if isinstance(frame, Action):
            await self._on_action(client, frame)
            return
        await self._on_message(client, frame)

    async def _on_ack(self, client: _Client, frame: Ack) -> None:
        row_ids = [row_id_of(i) for i in frame.ids]
        known = [r for r in row_ids if r is not None]
        if len(known) != len(row_ids):
            client.send(Error(error="an ack names reply ids 'cli-<n>'", field="ids"))
        if known:
            await self.executors.central.run(self.backlog.ack, frame.chat, known)

    async def _on_action(self, client: _Client, frame: Action) -> None:
        assert self._setup is not None
        text: str | None = None
        if self._setup.on_action is not None:
            text = await self._setup.on_action(
                frame.question_id, frame.value, user_id_of(CHANNEL_TYPE, frame.sender)
            )
        client.send(ActionResult(id=frame.id, text=text or "Not accepted."))

    async def _on_message(self, client: _Client, frame: Message) -> None:
        assert self._setup is not None
        client_id = frame.id or new_id("cli")
        reply_to = None
        if frame.reply_to:
            text, sender = self._said.get((frame.chat, frame.reply_to), (None, None))
            reply_to = ReplyTo(id=frame.reply_to, text=text, sender=sender)
        self._remember(frame.chat, client_id, frame.text, frame.sender)
        event = InboundEvent(
            channel_type=CHANNEL_TYPE,
            platform_id=frame.chat,
            thread_id=None,
            message=InboundMessage(
                id=client_id,
                text=frame.text,
                sender=frame.sender,
                # No name given: keep the one the user record holds (setup's owner name).
                sender_name=frame.sender_name or None,
                is_mention=True,  # a terminal chat is a direct conversation with the assistant
                is_group=False,
                timestamp=now_iso(),
                reply_to=reply_to,
            ),
        )
        outcome = await self._setup.on_inbound(event)
        if outcome is None:
            return
        waiting = set(outcome.waiting_ids)
        finished = {m for m in waiting if m in self._recent_done}
        client.waiting |= waiting - finished
        client.send(encode(outcome.to_frame(client_id)))  # written before any later "done"
        if finished:
            failed = sorted(m for m in finished if self._recent_done.get(m))
            client.send(Done(ids=sorted(finished), failed=failed or None))


def _retrieve(step: asyncio.Future[str | None]) -> None:
    """Mark a shielded step's exception seen (its caller may have been cancelled)."""
    if not step.cancelled():
        step.exception()


def _failure_of(payload: OutboundPayload) -> tuple[str | None, str | None]:
    """The structured failure mark of a reply: the agent's turn failed, or a host notice stands
    in for an answer that will not come (not processed, budget spent)."""
    content = payload.content
    if content.get("error"):
        return "agent_error", str(content["error"])
    if content.get("failure"):
        return str(content["failure"]), payload.text
    return None, None
