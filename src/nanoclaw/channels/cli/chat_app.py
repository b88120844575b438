"""The interactive ``nanoclaw chat``: prompt_toolkit line editing over one reconnecting connection.

Keys: Enter sends; Esc then Enter (Alt+Enter) inserts a newline; a bracketed paste of several
lines is one message; Up/Down walk the persistent history; Tab lists the open card's options;
Ctrl-C clears the line; Ctrl-D on an empty line leaves. Replies print above the prompt
(``patch_stdout``), so the line being typed is never touched, and the terminal stays raw while
they print, so no key typed meanwhile is taken by the terminal itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import ANSI
from prompt_toolkit.history import FileHistory
from prompt_toolkit.input import Input
from prompt_toolkit.input.vt100 import Vt100Input
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.patch_stdout import patch_stdout
from prompt_toolkit.shortcuts import print_formatted_text
from pydantic import BaseModel

from nanoclaw.channels.cli.client import (
    Connection,
    HostGoneError,
    HostNotRunningError,
    ShownReplies,
)
from nanoclaw.channels.cli.frames import Action, Hello, Message
from nanoclaw.channels.cli.render import line_text, reply_text
from nanoclaw.errors import ChannelError

EXIT_LEFT = 0
EXIT_HOST_GONE = 3
RECONNECT_POLL_S = 0.25  # how often a lost connection is retried while the host is away
DEFAULT_RECONNECT_FOR_S = 30.0
KEYS_HINT = "Enter send · Esc Enter newline · ↑↓ history · Tab card options · Ctrl-D leave"


class _HostGoneForGoodError(Exception):
    """Ends the prompt: the host did not come back within the reconnect window."""


class _RawWhilePrintingInput(Vt100Input):
    """A terminal that stays in raw mode while text is printed above the prompt.

    prompt_toolkit prints above a running prompt in cooked mode. There the terminal itself acts
    on a Ctrl-D (its own end-of-file mark, never seen by the prompt) or a Ctrl-C (a SIGINT) typed
    while a reply prints, so "Ctrl-D leaves" failed right after a long or slow reply. Kept raw,
    those keys wait in the terminal's input buffer and reach the prompt when the print is done.
    """

    def cooked_mode(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


def _terminal_input() -> Input | None:
    """Our input for a terminal stdin; prompt_toolkit's own choice otherwise (a pipe)."""
    return _RawWhilePrintingInput(sys.stdin) if sys.stdin.isatty() else None


class _CardCompleter(Completer):
    """With a card open, Tab lists its options; choosing one fills in its number."""

    def __init__(self, chat: ChatApp) -> None:
        self.chat = chat

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        card = self.chat.card
        if card is None:
            return
        typed = document.text_before_cursor.strip().lower()
        for n, option in enumerate(card.get("options") or [], start=1):
            label = str(option.get("label", ""))
            if not typed or str(n).startswith(typed) or label.lower().startswith(typed):
                yield Completion(
                    str(n),
                    start_position=-len(document.text_before_cursor),
                    display=f"{n}. {label}",
                )


class ChatApp:
    def __init__(
        self,
        *,
        socket_path: Path,
        chat: str,
        sender: str,
        history_path: Path,
        reconnect_for_s: float = DEFAULT_RECONNECT_FOR_S,
    ) -> None:
        self.socket_path = socket_path
        self.chat = chat
        self.sender = sender
        self.reconnect_for_s = reconnect_for_s
        self.conn: Connection | None = None
        self.shown = ShownReplies()
        self.card: dict[str, Any] | None = None
        self.working = False
        self.agent_name: str | None = None
        self.gone = False
        history_path.parent.mkdir(parents=True, exist_ok=True)
        self.session: PromptSession[str] = PromptSession(
            input=_terminal_input(),
            history=FileHistory(str(history_path)),
            key_bindings=self._keys(),
            bottom_toolbar=self._toolbar,
            rprompt=self._status,
            completer=_CardCompleter(self),
            complete_while_typing=False,
            enable_open_in_editor=False,
        )

    # -- keys and screen --------------------------------------------------------------------------
    @staticmethod
    def _keys() -> KeyBindings:
        keys = KeyBindings()

        @keys.add("escape", "enter")  # Alt+Enter sends the same two keys
        def _newline(event: KeyPressEvent) -> None:
            event.current_buffer.insert_text("\n")

        return keys

    def _status(self) -> str:
        """Shown at the right of the input line (needs no cursor-position reports)."""
        if self.conn is None:
            return "host unreachable — reconnecting…"
        if self.working:
            return f"⋯ {self.agent_name or 'the agent'} is working…"
        if self.card is not None:
            return f"card: 1–{len(self.card.get('options') or [])} or Tab"
        return ""

    def _toolbar(self) -> str:
        return f" {KEYS_HINT}"  # drawn where the terminal reports the cursor position

    def _refresh(self) -> None:
        with contextlib.suppress(Exception):
            self.session.app.invalidate()

    def _show(self, ansi_text: str) -> None:
        print_formatted_text(ANSI(ansi_text), end="")

    def _say(self, text: str, style: str = "dim") -> None:
        self._show(line_text(text, style=style, width=self._width()))

    @staticmethod
    def _width() -> int:
        return shutil.get_terminal_size((100, 24)).columns

    # -- run --------------------------------------------------------------------------------------
    async def run(self) -> int:
        """Chat until Ctrl-D (0) or until the host is gone for good (3)."""
        self.conn = await Connection.open(self.socket_path)  # HostNotRunningError: caller exits 3
        await self.conn.send(Hello(type="hello", chat=self.chat))
        print(f"Chatting in '{self.chat}' as {self.sender}. {KEYS_HINT}.", flush=True)
        with patch_stdout(raw=True):
            pump = asyncio.create_task(self._pump())
            try:
                return await self._prompt_loop()
            finally:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pump
                if self.conn is not None:
                    await self.conn.close()

    async def _prompt_loop(self) -> int:
        carry = ""
        while True:
            if self.gone:
                return self._host_gone()
            try:
                text = await self.session.prompt_async(f"{self.chat}> ", default=carry)
            except EOFError:
                return EXIT_LEFT
            except KeyboardInterrupt:
                carry = ""
                continue
            except _HostGoneForGoodError:
                return self._host_gone()
            carry = ""
            if not text.strip():
                continue
            if self.conn is None:
                self._say(
                    "Not sent: the host is unreachable. Your text is kept; press Enter again."
                )
                carry = text
                continue
            try:
                await self._submit(text)
            except (ConnectionError, HostGoneError):
                carry = text  # the pump notices the loss and reconnects; nothing typed is lost
                self._say("Not sent: the connection was lost. Your text is kept.")

    def _host_gone(self) -> int:
        print(
            f"nanoclaw chat: the host went away and did not come back within "
            f"{self.reconnect_for_s:g} s (no socket at {self.socket_path}).",
            flush=True,
        )
        return EXIT_HOST_GONE

    async def _submit(self, text: str) -> None:
        value = self._card_answer(text)
        if value is not None and self.card is not None:
            question_id = str(self.card.get("question_id"))
            self.card = None
            await self._send(
                Action(
                    type="action",
                    chat=self.chat,
                    sender=self.sender,
                    question_id=question_id,
                    value=value,
                )
            )
            return
        await self._send(Message(type="message", chat=self.chat, sender=self.sender, text=text))

    def _card_answer(self, text: str) -> str | None:
        """The open card's option value that ``text`` names (its number or its label)."""
        if self.card is None:
            return None
        options = list(self.card.get("options") or [])
        answer = text.strip()
        if answer.isdigit() and 1 <= int(answer) <= len(options):
            return str(options[int(answer) - 1].get("value"))
        for option in options:
            if str(option.get("label", "")).lower() == answer.lower():
                return str(option.get("value"))
        return None

    async def _send(self, frame: BaseModel) -> None:
        if self.conn is None:
            raise ConnectionError("not connected")
        await self.conn.send(frame)

    # -- frames from the host ---------------------------------------------------------------------
    async def _pump(self) -> None:
        while True:
            conn = self.conn
            assert conn is not None
            try:
                while True:
                    try:
                        frame = await conn.next_frame()
                    except HostGoneError:
                        raise
                    except ChannelError as exc:  # one bad frame: say so, keep the chat
                        self._say(f"[{exc}]", style="red")
                        continue
                    await self._on_frame(conn, frame)
            except HostGoneError:
                pass
            self.conn = None
            self.working = False
            self._refresh()
            await conn.close()
            if not await self._reconnect():
                self.gone = True
                with contextlib.suppress(Exception):
                    self.session.app.exit(exception=_HostGoneForGoodError())
                return
            self._say("[reconnected]")

    async def _reconnect(self) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.reconnect_for_s
        while loop.time() < deadline:
            try:
                conn = await Connection.open(self.socket_path)
                await conn.resume(self.chat, self.shown)
            except (HostNotRunningError, ConnectionError):
                await asyncio.sleep(RECONNECT_POLL_S)
                continue
            self.conn = conn
            self._refresh()
            return True
        return False

    async def _on_frame(self, conn: Connection, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "reply":
            if frame.get("sender_name"):
                self.agent_name = str(frame["sender_name"])
            # A replay of a reply shown before a reconnect whose ack did not reach the host.
            reply_id = frame.get("id")
            if not isinstance(reply_id, str) or not reply_id or self.shown.add(reply_id):
                self._show(reply_text(frame, width=self._width()))
                if isinstance(frame.get("card"), dict):
                    self.card = frame["card"]
            await conn.ack(self.chat, frame)
        elif kind == "typing":
            self.working = bool(frame.get("on"))
        elif kind == "done":
            self.working = False
        elif kind == "notice":
            self._say(f"[{frame.get('text')}]", style="yellow")
        elif kind == "error":
            self._say(f"[error: {frame.get('error')}]", style="red")
        elif kind == "action_result":
            self._say(f"[{frame.get('text')}]")
        self._refresh()


async def run_chat(
    socket_path: Path, *, chat: str, sender: str, history_path: Path, reconnect_for_s: float
) -> int:
    app = ChatApp(
        socket_path=socket_path,
        chat=chat,
        sender=sender,
        history_path=history_path,
        reconnect_for_s=reconnect_for_s,
    )
    return await app.run()
