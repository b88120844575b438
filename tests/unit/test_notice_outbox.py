"""NoticeOutbox: a host notice is recorded, retried with backoff, resumed after a restart."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nanoclaw.db.central import CentralDB
from nanoclaw.delivery.notices import MAX_NOTICE_ATTEMPTS, NoticeOutbox, retry_delay_s
from nanoclaw.settings import Settings
from tests.helpers import shared_executors, until


class FlakyChannel:
    """A Notifier whose platform refuses the first ``down_for`` attempts; records every call."""

    def __init__(self, down_for: int = 0) -> None:
        self.down_for = down_for
        self.calls: list[tuple[str | None, str | None, str | None, str]] = []
        self.accepted: list[str] = []

    async def notify(
        self,
        channel_type: str | None,
        platform_id: str | None,
        thread_id: str | None,
        text: str,
        failure: str | None = None,
    ) -> bool:
        self.calls.append((channel_type, platform_id, thread_id, text))
        if len(self.calls) <= self.down_for:
            return False
        self.accepted.append(text)
        return True


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def db(settings: Settings, tmp_path: Path) -> CentralDB:
    central = CentralDB(path=tmp_path / "central.db", migrations_root=settings.migrations_path)
    central.migrate()
    return central


async def test_a_notice_the_platform_refuses_is_retried_after_its_backoff(db: CentralDB) -> None:
    channel, clock = FlakyChannel(down_for=1), Clock()
    outbox = NoticeOutbox(executors=shared_executors(), db=db, sender=channel, clock=clock)
    assert await outbox.notify("slack", "C1", "t1", "Sorry: I gave up") is False
    assert [n.text for n in outbox.pending()] == ["Sorry: I gave up"]
    assert await outbox.retry_due() == 0  # not before its time
    clock.advance(retry_delay_s(1))
    assert await outbox.retry_due() == 1
    assert channel.calls == [("slack", "C1", "t1", "Sorry: I gave up")] * 2
    assert outbox.pending() == []
    clock.advance(3600)
    assert await outbox.retry_due() == 0 and len(channel.calls) == 2  # sent once, never again


async def test_a_killed_host_s_pending_notice_is_sent_by_the_next_one(db: CentralDB) -> None:
    clock = Clock()
    before = NoticeOutbox(
        executors=shared_executors(), db=db, sender=FlakyChannel(down_for=99), clock=clock
    )
    assert await before.notify("telegram", "42", None, "Your request was denied") is False
    clock.advance(retry_delay_s(1))
    after_channel = FlakyChannel()
    after = NoticeOutbox(executors=shared_executors(), db=db, sender=after_channel, clock=clock)
    assert await after.retry_due() == 1
    assert after_channel.accepted == ["Your request was denied"]


async def test_a_notice_is_given_up_after_the_last_attempt(db: CentralDB) -> None:
    channel, clock = FlakyChannel(down_for=10_000), Clock()
    outbox = NoticeOutbox(executors=shared_executors(), db=db, sender=channel, clock=clock)
    await outbox.notify("slack", "C1", None, "lost cause")
    for attempt in range(1, MAX_NOTICE_ATTEMPTS):
        clock.advance(retry_delay_s(attempt))
        await outbox.retry_due()
    assert len(channel.calls) == MAX_NOTICE_ATTEMPTS
    assert outbox.pending() == []
    clock.advance(10 * 3600)
    await outbox.retry_due()
    assert len(channel.calls) == MAX_NOTICE_ATTEMPTS


async def test_a_notice_without_an_address_is_not_recorded(db: CentralDB) -> None:
    channel = FlakyChannel()
    outbox = NoticeOutbox(executors=shared_executors(), db=db, sender=channel)
    assert await outbox.notify(None, "C1", None, "x") is False
    assert await outbox.notify("slack", None, None, "x") is False
    assert outbox.pending() == [] and channel.calls == []


def test_the_backoff_doubles_and_is_capped() -> None:
    assert [retry_delay_s(n) for n in (1, 2, 3)] == [2.0, 4.0, 8.0]
    assert retry_delay_s(50) == 300.0


class SlowChannel(FlakyChannel):
    """Accepts, but only once ``release`` is set: the platform is slow to answer."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.called = asyncio.Event()

    async def notify(
        self,
        channel_type: str | None,
        platform_id: str | None,
        thread_id: str | None,
        text: str,
        failure: str | None = None,
    ) -> bool:
        self.calls.append((channel_type, platform_id, thread_id, text))
        self.called.set()
        await self.release.wait()
        self.accepted.append(text)
        return True


async def test_a_notice_being_sent_is_not_sent_again_by_the_retry_loop(db: CentralDB) -> None:
    channel = SlowChannel()
    outbox = NoticeOutbox(executors=shared_executors(), db=db, sender=channel)
    sending = asyncio.create_task(outbox.notify("slack", "C1", None, "slow"))
    await asyncio.wait_for(channel.called.wait(), timeout=5)
    assert await outbox.retry_due() == 0  # due, but already in flight
    channel.release.set()
    assert await sending is True
    assert channel.accepted == ["slow"] and outbox.pending() == []


async def test_the_retry_loop_retries_a_refused_notice_at_its_time(db: CentralDB) -> None:
    """The loop sleeps until the next attempt is due (no poll each second), and is woken by
    the refusal to learn that time."""
    channel, clock = FlakyChannel(down_for=1), Clock()
    outbox = NoticeOutbox(executors=shared_executors(), db=db, sender=channel, clock=clock)
    loop = asyncio.create_task(outbox.run())
    try:
        assert await outbox.notify("slack", "C1", None, "Sorry") is False
        clock.advance(retry_delay_s(1))
        await until(lambda: channel.accepted == ["Sorry"], within_s=10)
        assert channel.accepted == ["Sorry"] and len(channel.calls) == 2
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
