"""The outbound scheduler: flood waits per chat, waits that are not attempts, the 1-hour limit."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from nanoclaw.channels.outbound import (
    OutboundScheduler,
    PartialSends,
    PlatformRateLimitError,
    RateLimits,
)
from nanoclaw.errors import DeliveryDeferredError, DeliveryError

LIMITS = RateLimits(per_chat_per_s=1.0, per_chat_burst=3.0, channel_per_s=30.0, channel_burst=30.0)


class FakeClock:
    """Time that moves only when the scheduler sleeps (so waits are exact and instant)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class Platform:
    """Answers like a flood-controlled platform: chat → seconds it refuses, counted per call."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.blocked_until: dict[str, float] = {}
        self.calls: list[tuple[str, float]] = []
        self.sent: list[str] = []

    def send(self, chat: str, text: str) -> Callable[[], Awaitable[str]]:
        async def call() -> str:
            self.calls.append((chat, self.clock.now))
            left = self.blocked_until.get(chat, 0.0) - self.clock.now
            if left > 0:
                raise PlatformRateLimitError("429", channel="test", retry_after_s=left)
            self.sent.append(text)
            return text

        return call


def scheduler(clock: FakeClock, **limits: float) -> OutboundScheduler:
    return OutboundScheduler(
        channel="test",
        limits=RateLimits(**{**LIMITS.__dict__, **limits}),
        clock=clock,
        sleep=clock.sleep,
    )


async def test_a_short_flood_wait_is_honoured_and_the_send_retried_after_it() -> None:
    clock = FakeClock()
    platform = Platform(clock)
    platform.blocked_until["42"] = clock.now + 3
    sent = await scheduler(clock).send("42", platform.send("42", "hi"))
    assert sent == "hi" and platform.sent == ["hi"]
    assert [t - 1000.0 for _, t in platform.calls] == [0.0, 3.0]  # retried exactly after the wait


async def test_a_long_wait_defers_the_row_without_counting_an_attempt() -> None:
    clock = FakeClock()
    platform = Platform(clock)
    platform.blocked_until["42"] = clock.now + 35  # the 3-sends-in-3-s failure of the issue
    out = scheduler(clock)
    with pytest.raises(DeliveryDeferredError) as deferred:
        await out.send("42", platform.send("42", "hi"))
    assert deferred.value.retryable and deferred.value.retry_after_s == pytest.approx(35)
    assert len(platform.calls) == 1  # one try, then no more calls into the wait
    with pytest.raises(DeliveryDeferredError):  # a second reply into the same wait: no call
        await out.send("42", platform.send("42", "again"))
    assert len(platform.calls) == 1
    clock.now += 35
    assert await out.send("42", platform.send("42", "hi")) == "hi"


async def test_a_wait_beyond_one_hour_fails_the_message_with_the_reason() -> None:
    clock = FakeClock()
    platform = Platform(clock)
    platform.blocked_until["42"] = clock.now + 7200
    with pytest.raises(DeliveryError) as failed:
        await scheduler(clock).send("42", platform.send("42", "hi"))
    assert not failed.value.retryable
    assert not isinstance(failed.value, DeliveryDeferredError)
    assert "7200 s" in str(failed.value) and "3600 s" in str(failed.value)


async def test_other_chats_keep_flowing_while_one_chat_waits() -> None:
    clock = FakeClock()
    platform = Platform(clock)
    out = scheduler(clock)
    platform.blocked_until["A"] = clock.now + 120
    with pytest.raises(DeliveryDeferredError):
        await out.send("A", platform.send("A", "a1"))
    for n in range(3):
        assert await out.send("B", platform.send("B", f"b{n}")) == f"b{n}"
    assert platform.sent == ["b0", "b1", "b2"] and clock.slept == []
    assert out.blocked_for_s("A") == pytest.approx(120) and out.blocked_for_s("B") == 0


async def test_sends_to_one_chat_are_paced_to_the_platform_rate() -> None:
    clock = FakeClock()
    platform = Platform(clock)
    out = scheduler(clock)
    for n in range(5):
        await out.send("42", platform.send("42", str(n)))
    # a burst of 3, then one per second
    assert [t - 1000.0 for _, t in platform.calls] == pytest.approx([0, 0, 0, 1, 2])


def test_partial_sends_remember_parts_until_the_whole_message_is_sent() -> None:
    partial = PartialSends()
    key = PartialSends.key("42", None, "long text")
    partial.sent(key).append("m1")
    assert partial.sent(PartialSends.key("42", None, "long text")) == ["m1"]
    assert partial.sent(PartialSends.key("43", None, "long text")) == []  # another chat
    partial.done(key)
    assert partial.sent(key) == []
