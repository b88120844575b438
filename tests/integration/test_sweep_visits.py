"""The sweep visits only sessions with something to do: settled, unchanged sessions are skipped."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from nanoclaw.host import Host, build_host
from nanoclaw.sessions.store import InboundMessage
from nanoclaw.settings import Settings
from tests.fakes.runtime import FakeRuntime
from tests.helpers import make_agent, wire_chat


@pytest.fixture
async def quiet_host(settings: Settings) -> AsyncIterator[Host]:
    instance = build_host(settings, runtime=FakeRuntime())
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


async def test_settled_sessions_are_skipped_until_one_changes(quiet_host: Host) -> None:
    host = quiet_host
    andy = make_agent(host.repo, "Andy")
    layouts = {}
    for n in range(5):
        mg, _ = wire_chat(host.repo, andy, f"chat{n}")
        session, layout = host.sessions.resolve(
            agent_group_id=andy.id, messaging_group_id=mg.id, thread_id=None, mode="shared"
        )
        layouts[session.id] = layout
    await host.sweep.sweep_once()  # visits every session and learns which are settled
    await host.sweep.sweep_once()
    report = await host.sweep.sweep_once()
    assert (report.swept, report.unchanged) == (0, 5)

    changed_id = next(iter(layouts))
    host.store.insert_messages(
        layouts[changed_id], [InboundMessage(id="m1", kind="chat", content={"text": "hi"})]
    )
    report = await host.sweep.sweep_once()
    assert report.swept == 1 and report.unchanged == 4
    assert report.woken == [changed_id]  # the one that changed is visited and its work woken
