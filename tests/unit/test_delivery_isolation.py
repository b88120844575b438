"""Tenant isolation in delivery: a stuck send, a locked DB or a flood delays only its own session."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from agent_runner.db import OutboundMessage, SessionDB

from nanoclaw.channels.registry import ChannelRegistry
from nanoclaw.contract.layout import SessionLayout
from nanoclaw.contract.timeutil import to_iso, utc_now
from nanoclaw.db.central import CentralDB
from nanoclaw.db.repository import Repository
from nanoclaw.db.sqlite import EngineCache
from nanoclaw.delivery.actions import SystemActions
from nanoclaw.delivery.loop import DeliveryLoop
from nanoclaw.delivery.rate import TokenBucket
from nanoclaw.sessions.outbound_reader import OutboundRow, SessionReader
from nanoclaw.sessions.service import SessionService
from nanoclaw.sessions.store import SessionStore
from nanoclaw.settings import Settings
from tests.fakes.channel import FakeAdapter
from tests.helpers import make_agent, shared_executors, wire_chat


class Tenants:
    """Several sessions (one per chat) of one agent, drained by one running delivery loop."""

    def __init__(self, tmp: Path, settings: Settings) -> None:
        db = CentralDB(path=tmp / "c.db", migrations_root=settings.migrations_path)
        db.migrate()
        self.repo = Repository(db)
        engines = EngineCache()
        self.store = SessionStore(sessions_root=tmp / "s", engines=engines)
        self.sessions = SessionService(repo=self.repo, store=self.store)
        self.adapter = FakeAdapter()
        channels = ChannelRegistry()
        channels.add(self.adapter)
        self.agent = make_agent(self.repo, "Andy")
        self.ids: dict[str, str] = {}
        self.layouts: dict[str, SessionLayout] = {}
        self.runners: dict[str, SessionDB] = {}
        self.loop = DeliveryLoop(
            executors=shared_executors(),
            settings=settings,
            repo=self.repo,
            sessions=self.sessions,
            reader=SessionReader(engines=engines),
            channels=channels,
            actions=SystemActions(),
            wake=lambda _sid: None,
            running_sessions=lambda: set(self.ids.values()),
        )

    def chat(self, name: str) -> None:
        mg, _ = wire_chat(self.repo, self.agent, name, channel="fake")
        session, layout = self.sessions.resolve(
            agent_group_id=self.agent.id, messaging_group_id=mg.id, thread_id=None, mode="shared"
        )
        self.store.prepare_outbound(layout)
        self.ids[name], self.layouts[name] = session.id, layout
        self.runners[name] = SessionDB(
            inbound_path=layout.inbound_db, outbound_path=layout.outbound_db
        )

    def reply(
        self,
        session_chat: str,
        text: str,
        *,
        to: str | None = None,
        deliver_after: str | None = None,
    ) -> None:
        self.runners[session_chat].send(
            OutboundMessage(
                kind="chat",
                content={"text": text},
                channel_type="fake",
                platform_id=to or session_chat,
                deliver_after=deliver_after,
            )
        )

    def sent(self, chat: str | None = None) -> list[str]:
        return [s.payload.text for s in self.adapter.sent if chat is None or s.platform_id == chat]

    def delivery_status(self, chat: str) -> list[tuple[str, str | None]]:
        conn = sqlite3.connect(self.layouts[chat].inbound_db)
        rows = conn.execute("SELECT status, last_error FROM delivered").fetchall()
        conn.close()
        return [(r[0], r[1]) for r in rows]


async def _until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition never became true")
        await asyncio.sleep(0.01)


@pytest.fixture
async def tenants(tmp_path: Path, settings: Settings) -> AsyncIterator[Tenants]:
    rig = Tenants(tmp_path, settings)
    yield rig
    rig.adapter.release()
    await rig.loop.close()


@contextlib.asynccontextmanager
async def running(loop: DeliveryLoop) -> AsyncIterator[None]:
    task = asyncio.create_task(loop.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await loop.close()


async def test_a_send_that_never_returns_delays_only_its_own_session(tenants: Tenants) -> None:
    tenants.chat("stuck")
    tenants.chat("fine")
    tenants.adapter.stalled.add("stuck")
    tenants.reply("stuck", "into the void")
    async with running(tenants.loop):
        await _until(lambda: tenants.adapter.in_flight == ["into the void"])
        tenants.reply("fine", "hello")
        await _until(lambda: tenants.sent() == ["hello"])
        assert tenants.adapter.in_flight == ["into the void"]  # still stuck meanwhile
        tenants.adapter.release()
        await _until(lambda: tenants.sent("stuck") == ["into the void"])


async def test_within_a_session_chats_go_side_by_side_and_each_chat_in_order(
    tmp_path: Path, settings: Settings
) -> None:
    rig = Tenants(tmp_path, settings)
    rig.chat("home")
    wire_chat(rig.repo, rig.agent, "other", channel="fake")  # wiring lets the agent send there
    rig.adapter.stalled.add("other")
    rig.reply("home", "to other", to="other")
    for n in range(5):
        rig.reply("home", f"home {n}")
    async with running(rig.loop):
        await _until(lambda: len(rig.sent("home")) == 5)
        assert rig.sent("home") == [f"home {n}" for n in range(5)]
        assert rig.adapter.in_flight == ["to other"]
        rig.adapter.release()
        await _until(lambda: rig.sent("other") == ["to other"])


async def test_a_send_that_times_out_is_recorded_for_retry(
    tmp_path: Path, settings: Settings
) -> None:
    rig = Tenants(tmp_path, settings.model_copy(update={"delivery_send_timeout_s": 0.2}))
    rig.chat("stuck")
    rig.adapter.stalled.add("stuck")
    rig.reply("stuck", "slow")
    await rig.loop.drain(rig.ids["stuck"])
    ((status, error),) = rig.delivery_status("stuck")
    assert status == "retrying" and error is not None and "timed out" in error
    rig.adapter.release()


async def test_a_locked_session_db_delays_only_its_own_session(tenants: Tenants) -> None:
    tenants.chat("locked")
    tenants.chat("fine")
    tenants.reply("locked", "behind a lock")
    holder = sqlite3.connect(tenants.layouts["locked"].inbound_db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        async with running(tenants.loop):
            await _until(lambda: tenants.adapter.attempts >= 1)  # its send went; the record waits
            tenants.reply("fine", "hello")
            await _until(lambda: tenants.delivery_status("fine") == [("delivered", None)])
            assert tenants.delivery_status("locked") == []  # still waiting for its lock
            holder.execute("ROLLBACK")
            await _until(lambda: tenants.delivery_status("locked") == [("delivered", None)])
            assert tenants.sent("locked") == ["behind a lock"]  # recorded late, never re-sent
    finally:
        holder.close()


async def test_one_agents_flood_is_rate_limited_and_another_chat_still_answered(
    tmp_path: Path, settings: Settings
) -> None:
    rig = Tenants(
        tmp_path,
        settings.model_copy(
            update={"delivery_rate_per_session_per_s": 20.0, "delivery_burst_per_session": 5}
        ),
    )
    rig.chat("flood")
    rig.chat("fine")
    for n in range(300):
        rig.reply("flood", f"spam {n}")
    async with running(rig.loop):
        await _until(lambda: len(rig.sent("flood")) >= 5)
        rig.reply("fine", "hello")
        await _until(lambda: "hello" in rig.sent())
        flood_sent = rig.sent("flood")
        assert len(flood_sent) < 300  # the flood is still being paced
        assert flood_sent == [f"spam {n}" for n in range(len(flood_sent))]  # in order


async def test_the_token_bucket_waits_for_a_token_and_never_drops() -> None:
    now = [0.0]
    bucket = TokenBucket(rate_per_s=10.0, burst=2, clock=lambda: now[0])
    await bucket.acquire()
    await bucket.acquire()
    third = asyncio.create_task(bucket.acquire())
    await asyncio.sleep(0.02)
    assert not third.done()  # no token left and the clock has not moved
    now[0] = 0.1  # one token's worth of time
    await asyncio.wait_for(third, timeout=5)


async def test_a_first_row_waiting_for_its_retry_is_retried_at_its_time(
    tmp_path: Path, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # The pass's first row is not terminal after its send failed: the drain must still record
    # how far the session is settled and keep it for the retry, not wait for the safety drain.
    rig = Tenants(
        tmp_path,
        settings.model_copy(update={"retry_backoff_base_s": 0.05, "full_poll_interval_s": 0.05}),
    )
    rig.chat("flaky")
    rig.adapter.fail_times = 1
    rig.reply("flaky", "second time lucky")
    async with running(rig.loop):
        await _until(lambda: rig.sent("flaky") == ["second time lucky"])
    assert rig.adapter.attempts == 2
    assert not [r for r in caplog.records if "drain of" in r.getMessage()]


async def test_a_row_to_deliver_later_is_not_passed_over_by_the_rows_after_it(
    tmp_path: Path, settings: Settings
) -> None:
    rig = Tenants(tmp_path, settings.model_copy(update={"full_poll_interval_s": 0.05}))
    rig.chat("room")
    later = to_iso(utc_now() + timedelta(seconds=3))  # written first: the lower seq
    rig.reply("room", "in a few seconds", deliver_after=later)
    rig.reply("room", "now")
    async with running(rig.loop):
        await _until(lambda: "now" in rig.sent("room"))
        assert rig.sent("room") == ["now"]  # not before its time
        await _until(lambda: rig.sent("room") == ["now", "in a few seconds"])


async def test_a_session_no_longer_watched_keeps_no_cached_row(tenants: Tenants) -> None:
    tenants.chat("brief")
    tenants.reply("brief", "bye")
    session_id = tenants.ids["brief"]
    async with running(tenants.loop):
        await _until(lambda: tenants.sent("brief") == ["bye"])
        assert session_id in tenants.loop._layouts  # watched while its runner lives
        del tenants.ids["brief"]  # its runner exited: nothing left to drain
        tenants.loop.notice(session_id)
        await _until(lambda: session_id not in tenants.loop._layouts)


async def test_a_session_waiting_for_a_retry_is_drained_at_its_time_not_at_every_check(
    tmp_path: Path, settings: Settings
) -> None:
    rig = Tenants(tmp_path, settings.model_copy(update={"full_poll_interval_s": 0.05}))
    rig.chat("flaky")
    rig.adapter.fail_times = 1  # retried 1 s later (the first backoff)
    passes: list[int] = []
    read = rig.loop.reader.outbound_rows

    def counted(*args: Any, **kwargs: Any) -> list[OutboundRow]:
        passes.append(1)
        return read(*args, **kwargs)

    rig.loop.reader.outbound_rows = counted  # type: ignore[method-assign]
    rig.reply("flaky", "eventually")
    async with running(rig.loop):
        await _until(lambda: rig.sent("flaky") == ["eventually"])
    # The failing pass, the next check (which reads the retry time), the retry: a few passes,
    # where a drain at every 50 ms check during the 1 s wait made about twenty.
    assert len(passes) <= 6, len(passes)
