"""Host notices through a real host: a denial reaches a chat whose platform refused it at first."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from nanoclaw.channels.base import InboundEvent, InboundMessage
from nanoclaw.host import Host, build_host
from nanoclaw.settings import Settings
from tests.fakes.channel import FakeAdapter
from tests.helpers import make_agent, wire_chat


@pytest.fixture
def flaky() -> FakeAdapter:
    return FakeAdapter(fail_times=1)  # the platform refuses the first send


@pytest.fixture
async def host(settings: Settings, flaky: FakeAdapter) -> AsyncIterator[Host]:
    instance = build_host(settings, channels=[flaky])
    instance.notices.poll_s = 0.05
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


async def test_a_denial_the_platform_refused_once_is_retried_and_arrives(
    host: Host, flaky: FakeAdapter
) -> None:
    andy = make_agent(host.repo, "Andy")
    wire_chat(host.repo, andy, "room", channel="fake", policy="public")
    event = InboundEvent(
        channel_type="fake",
        platform_id="room",
        thread_id=None,
        message=InboundMessage(id="m1", text="/grant bob admin", sender="bob"),
    )
    await flaky.on_inbound(event)
    (notice,) = host.notices.pending()
    assert (
        notice.text == "Permission denied: /grant requires admin access." and notice.attempts == 1
    )
    # The send is recorded just after it returns: wait for both states, not a time.
    for _ in range(600):
        if flaky.sent and not host.notices.pending():
            break
        await asyncio.sleep(0.05)
    assert [s.payload.text for s in flaky.sent] == [notice.text]
    assert flaky.attempts == 2
    assert host.notices.pending() == []
