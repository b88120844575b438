"""No chat waits for another (DESIGN §4): over the cap, an idle runner makes room, a busy one never."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from nanoclaw.host import Host, build_host
from nanoclaw.settings import Settings
from tests.helpers import make_agent, say, texts, wire_chat

MOCK = "(mock model, no API key configured) heard: "


@pytest.fixture
async def capped_host(settings: Settings) -> AsyncIterator[Host]:
    instance = build_host(settings.model_copy(update={"max_concurrent_runners": 2}))
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


async def test_a_third_chat_over_a_cap_of_two_is_answered_and_the_busy_runner_kept(
    capped_host: Host,
) -> None:
    host = capped_host
    andy = make_agent(host.repo, "Andy")
    for chat in ("busy", "idle", "third"):
        wire_chat(host.repo, andy, chat)
    # "busy" holds its turn (mid-turn) for far longer than the test runs.
    busy = asyncio.create_task(say(host.settings.cli_socket, "!sleep 60", chat="busy", timeout=90))
    for _ in range(200):
        if len(host.supervisor.running_sessions()) == 1:
            break
        await asyncio.sleep(0.05)
    idle = await say(host.settings.cli_socket, "hello", chat="idle")
    assert texts(idle) == [f"Andy {MOCK}hello"]
    assert host.supervisor.running_sessions() == {
        _session_of(host, "busy"),
        _session_of(host, "idle"),
    }

    third = await say(host.settings.cli_socket, "am I starved?", chat="third")

    assert texts(third) == [f"Andy {MOCK}am I starved?"]
    by_chat = {chat: _session_of(host, chat) for chat in ("busy", "idle", "third")}
    assert not busy.done()  # the busy turn is still running: it was not stopped
    assert host.supervisor.running_sessions() == {by_chat["busy"], by_chat["third"]}
    assert host.repo.session(by_chat["idle"]).runner_status == "stopped"
    busy.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await busy


async def test_a_chat_that_finds_every_runner_mid_turn_gets_a_slot_when_a_turn_ends(
    settings: Settings,
) -> None:
    # The sweep never runs in this test: only a turn's end can make the room.
    host = build_host(
        settings.model_copy(update={"max_concurrent_runners": 2, "sweep_interval_s": 3600.0})
    )
    await host.start()
    try:
        andy = make_agent(host.repo, "Andy")
        for chat in ("a", "b", "late"):
            wire_chat(host.repo, andy, chat)
        first = [
            asyncio.create_task(say(host.settings.cli_socket, "!sleep 1", chat=chat, timeout=30))
            for chat in ("a", "b")
        ]
        for _ in range(400):  # both runners up and mid-turn
            if len(host.supervisor.running_sessions()) == 2:
                break
            await asyncio.sleep(0.05)
        assert len(host.supervisor.running_sessions()) == 2
        late = await say(host.settings.cli_socket, "my turn?", chat="late", timeout=30)
        assert texts(late) == [f"Andy {MOCK}my turn?"]
        for task in first:
            assert texts(await task)  # the turns that held the slots were not cut short
        assert _session_of(host, "late") in host.supervisor.running_sessions()
    finally:
        await host.stop()


def _session_of(host: Host, chat: str) -> str:
    mg = host.repo.messaging_group("cli", chat)
    assert mg is not None
    (session,) = [s for s in host.repo.sessions() if s.messaging_group_id == mg.id]
    return session.id
