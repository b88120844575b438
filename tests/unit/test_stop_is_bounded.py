"""Stopping never hangs: a cancelled caller stays cancelled, and the host always stops runners.

The CI failure of issue #10 (a 120 s teardown hang in ``waitpid`` on a runner that never
exited): the delivery loop, cancelled by ``Host.stop`` while its turn-done listener was
stopping a typing indicator with ``cancel(); suppress(CancelledError): await task``, had its
own cancellation swallowed and ran on; ``Host.stop`` awaited it forever and never reached
``supervisor.close()``, so the runners were never told to stop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import nanoclaw.host
from nanoclaw.cancel import cancel_and_wait
from nanoclaw.channels.typing import TypingKeeper
from nanoclaw.host import build_host
from nanoclaw.settings import Settings
from tests.fakes.channel import FakeAdapter
from tests.helpers import make_agent, say, texts, wire_chat


class TypingAdapter(FakeAdapter):
    def __init__(self) -> None:
        super().__init__()
        self.typing: list[bool] = []
        self.changed = asyncio.Event()

    async def set_typing(self, platform_id: str, thread_id: str | None, on: bool) -> None:
        self.typing.append(on)
        self.changed.set()


async def test_a_caller_cancelled_while_it_stops_a_typing_indicator_stays_cancelled() -> None:
    keeper = TypingKeeper(refresh_s=3600)
    adapter = TypingAdapter()
    keeper.start("s1", adapter, "chat", None, ["m1"])
    await adapter.changed.wait()  # the indicator runs
    ran_on = asyncio.Event()

    async def turn_done_listener() -> None:
        await keeper.stop("s1")
        ran_on.set()

    caller = asyncio.create_task(turn_done_listener())
    await asyncio.sleep(0)  # one loop step: the caller is now waiting for the indicator to end
    caller.cancel()
    await asyncio.wait({caller})
    assert caller.cancelled() and not ran_on.is_set()


async def test_cancel_and_wait_is_bounded_and_reports_a_task_that_ignores_cancel() -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # the bug pattern: a task that eats its cancellation

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    assert await cancel_and_wait(task, timeout_s=0.05) is False
    release.set()
    assert await cancel_and_wait(task, timeout_s=5) is True


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


async def test_host_stop_stops_the_runners_even_when_a_loop_ignores_cancel(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nanoclaw.host, "TASK_STOP_TIMEOUT_S", 0.2)
    host = build_host(settings)
    await host.start()
    agent = make_agent(host.repo, "Andy")
    wire_chat(host.repo, agent, "local")
    reply = await say(host.settings.cli_socket, "hello")
    assert any("heard: hello" in t for t in texts(reply))
    (handle,) = [r.handle for r in host.supervisor._running.values()]
    pid = handle.process.pid  # type: ignore[attr-defined]
    assert _alive(pid)
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue

    host._spawn(stubborn(), "stubborn")
    try:
        await asyncio.wait_for(host.stop(), timeout=60)
        assert not _alive(pid), "the runner outlived the host's stop"
    finally:
        release.set()
