"""The composition root: ``build_host`` wires every component; none holds the host; one task
owner; one injected clock."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from nanoclaw.db.models import HostNotice
from nanoclaw.host import Host, build_host
from nanoclaw.settings import Settings
from tests.helpers import make_agent, say, texts, wire_chat


class FakeClock:
    """A clock the test moves; records every read."""

    def __init__(self) -> None:
        self.moment = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
        self.reads = 0

    def now(self) -> datetime:
        self.reads += 1
        return self.moment

    def monotonic(self) -> float:
        self.reads += 1
        return time.monotonic()


def test_no_component_holds_the_host_and_none_can_be_replaced(settings: Settings) -> None:
    host = build_host(settings)
    components = [getattr(host, f.name) for f in dataclasses.fields(host)]
    assert len(components) > 20
    for component in components:
        held = vars(component).values() if hasattr(component, "__dict__") else ()
        assert not any(isinstance(value, Host) for value in held), type(component).__name__
    with pytest.raises(dataclasses.FrozenInstanceError):
        host.router = host.router  # type: ignore[misc]
    host.db.dispose()


async def test_a_host_started_twice_raises_and_a_stopped_host_leaves_no_task(
    settings: Settings,
) -> None:
    before = asyncio.all_tasks()
    host = build_host(settings)
    await host.start()
    try:
        with pytest.raises(RuntimeError, match="already started"):
            await host.start()
        agent = make_agent(host.repo, "Andy")
        wire_chat(host.repo, agent, "local")
        exchange = await say(settings.cli_socket, "hello")
        assert texts(exchange), exchange
        assert {"delivery", "sweep", "notices", "approval-expiry"} <= set(host.tasks.names())
    finally:
        await asyncio.wait_for(host.stop(), timeout=30)
    assert host.tasks.names() == []
    leftover = {t for t in asyncio.all_tasks() - before if not t.done()}
    leftover.discard(asyncio.current_task())  # type: ignore[arg-type]
    assert leftover == set(), sorted(t.get_name() for t in leftover)


async def test_the_injected_clock_stamps_host_notices(settings: Settings) -> None:
    clock = FakeClock()
    host = build_host(settings, clock=clock)
    await host.start()
    try:
        await host.notices.notify("cli", "nobody-listens", None, "hello")
        with host.db.session() as s:
            (created,) = s.scalars(select(HostNotice.created_at)).all()
        assert created.replace(tzinfo=UTC) == clock.moment
    finally:
        await asyncio.wait_for(host.stop(), timeout=30)
