"""A real ``nanoclaw run`` host as a subprocess, and chat observers that survive its restarts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from nanoclaw.channels.cli.client import ShownReplies
from nanoclaw.channels.cli.protocol import encode
from nanoclaw.runtime.process import find_foreign_runners
from nanoclaw.service.breaker import StartupBreaker
from nanoclaw.settings import Settings

NANOCLAW = str(Path(sys.executable).with_name("nanoclaw"))


def host_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NANOCLAW_", "ANTHROPIC_"))}
    env.update(
        {
            "NANOCLAW_ROOT": str(settings.root),
            "NANOCLAW_DATA_DIR": str(settings.data_path),
            "NANOCLAW_GROUPS_DIR": str(settings.groups_path),
            "NANOCLAW_LOGS_DIR": str(settings.logs_path),
            "NANOCLAW_CLI_SOCKET_PATH": str(settings.cli_socket),
            "NANOCLAW_RUNTIME": "process",
            "NANOCLAW_ALLOW_PROCESS_RUNTIME": "1",
            "NANOCLAW_PROVIDER": "mock",
            "NANOCLAW_TIMEZONE": "UTC",
        }
    )
    env.update(extra)
    return env


class HostProcess:
    """Starts, SIGKILLs and restarts ``nanoclaw run``; each run logs to its own file."""

    def __init__(self, settings: Settings, *, log_dir: Path, **env: str) -> None:
        self.settings = settings
        self.env = host_env(settings, **env)
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self) -> None:
        self.runs += 1
        # The harness restarts on purpose, as a user's `nanoclaw start` would: the start-up
        # breaker's crash-loop wait is for unattended restarts, not for these.
        StartupBreaker(data_path=self.settings.data_path).request_skip()
        log = (self.log_dir / f"host-{self.runs}.log").open("wb")
        self.proc = subprocess.Popen(
            [NANOCLAW, "run", "--log-level", "INFO"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # Runners a killed host left behind (the test must not leak processes).
        for pid in find_foreign_runners(self.settings.install_id, exclude=set()):
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)

    def runner_pids(self) -> set[int]:
        """Live runner processes of this install (the current host's and any orphans)."""
        return set(find_foreign_runners(self.settings.install_id, exclude=set()))

    def logs(self, *, tail_chars: int | None = 3000) -> str:
        """Every run's log, each cut to its last ``tail_chars`` (None: whole)."""
        start = -tail_chars if tail_chars else 0
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[start:]}"
            for p in sorted(self.log_dir.glob("host-*.log"))
        )


class Observers:
    """One subscribed connection per chat, reconnecting whenever the host restarts."""

    def __init__(self, socket_path: Path, chats: list[str]) -> None:
        self.socket_path = socket_path
        self.chats = chats
        self.replies: dict[str, list[str]] = defaultdict(list)
        self.ready: dict[str, asyncio.Event] = {c: asyncio.Event() for c in chats}
        self.shown: dict[str, ShownReplies] = {c: ShownReplies() for c in chats}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._watch(c)) for c in self.chats]

    async def all_ready(self, within_s: float) -> None:
        await asyncio.wait_for(
            asyncio.gather(*(e.wait() for e in self.ready.values())), timeout=within_s
        )

    def not_ready(self) -> None:
        for event in self.ready.values():
            event.clear()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch(self, chat: str) -> None:
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(str(self.socket_path))
            except OSError:
                await asyncio.sleep(0.02)
                continue
            try:
                # As every client does (docs/cli-protocol.md): what was shown is acknowledged
                # again before the hello, so an ack lost with a killed host costs no re-send.
                if ids := self.shown[chat].ids():
                    writer.write(encode({"type": "ack", "chat": chat, "ids": ids}))
                writer.write(encode({"type": "hello", "chat": chat}))
                await writer.drain()
                while True:
                    line = await reader.readline()
                    if not line:
                        break
                    frame: dict[str, Any] = json.loads(line)
                    if frame.get("type") == "ready":
                        self.ready[chat].set()
                    elif frame.get("type") == "reply":
                        self.replies[chat].append(str(frame.get("text", "")))
                        self.shown[chat].add(str(frame["id"]))
                        # Acknowledged as shown, as every client does: an unacknowledged reply
                        # is sent again on each reconnect (docs/cli-protocol.md).
                        ack = {"type": "ack", "chat": chat, "ids": [frame["id"]]}
                        writer.write(encode(ack))
            except (OSError, ValueError):
                pass
            finally:
                self.ready[chat].clear()
                writer.close()
            await asyncio.sleep(0.02)


async def send_until_accepted(
    socket_path: Path, *, chat: str, message_id: str, text: str, gate: Observers | None = None
) -> None:
    """Send one message with a fixed id until the host accepts it (re-sends are idempotent).

    With a ``gate``, each attempt waits until every observer is connected, so no reply
    can land in the adapter's backlog and be flushed to this short-lived connection.
    """
    while True:
        if gate is not None:
            with contextlib.suppress(TimeoutError):
                await gate.all_ready(within_s=30)
        try:
            reader, writer = await asyncio.open_unix_connection(str(socket_path))
        except OSError:
            await asyncio.sleep(0.05)
            continue
        try:
            writer.write(
                encode(
                    {
                        "type": "message",
                        "chat": chat,
                        "sender": "alice",
                        "text": text,
                        "id": message_id,
                    }
                )
            )
            await writer.drain()
            while True:
                line = await asyncio.wait_for(reader.readline(), timeout=10)
                if not line:
                    break
                frame = json.loads(line)
                if frame.get("type") == "accepted":
                    return
                if frame.get("type") in ("notice", "error"):
                    raise AssertionError(f"message {message_id} refused: {frame}")
        except (OSError, TimeoutError, ValueError):
            pass
        finally:
            writer.close()
        await asyncio.sleep(0.05)
