"""One outbound scheduler per channel: the platform's send rate limits and flood waits, per chat.

Every platform call that sends into a chat goes through ``OutboundScheduler.send``. It paces
calls with a token bucket per chat and one for the whole channel, and when the platform
answers "too many requests, retry after N s" (``PlatformRateLimitError``) it blocks *that chat
only* for N s. Invariants:

- a wait is never an attempt: a rate-limited call is retried after its wait, and a row that
  has to wait longer than ``RateLimits.inline_wait_max_s`` is handed back to the delivery loop
  as ``DeliveryDeferredError`` (re-scheduled without counting an attempt);
- a wait longer than ``RateLimits.max_wait_s`` (1 hour) fails the message for good with a
  ``DeliveryError`` that says so (the delivery loop tells the agent);
- calls to one chat are serial (a per-chat lock), so another chat never waits behind a chat
  that is flood-limited.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from nanoclaw.errors import ChannelError, DeliveryDeferredError, DeliveryError

T = TypeVar("T")

MAX_WAIT_S = 3600.0  # a flood wait beyond one hour fails the message
INLINE_WAIT_MAX_S = 5.0  # shorter waits are slept here; longer ones defer the row
PARTIAL_SENDS_KEPT = 256


class PlatformRateLimitError(ChannelError):
    """The platform refused a call for now: retry after ``retry_after_s`` seconds."""

    def __init__(self, message: str, *, channel: str, retry_after_s: float) -> None:
        super().__init__(message, channel=channel)
        self.retry_after_s = max(0.0, retry_after_s)


@dataclass(frozen=True)
class RateLimits:
    """A platform's documented send limits, as token buckets (rate per second, burst)."""

    per_chat_per_s: float
    per_chat_burst: float
    channel_per_s: float
    channel_burst: float
    max_wait_s: float = MAX_WAIT_S
    inline_wait_max_s: float = INLINE_WAIT_MAX_S


class _Bucket:
    def __init__(self, rate_per_s: float, burst: float, now: float) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def wait_s(self, now: float) -> float:
        """Seconds until one token is free (0 when one is free now)."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate_per_s)
        self.stamp = now
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate_per_s

    def take(self) -> None:
        self.tokens -= 1.0


class OutboundScheduler:
    """Paces and retries one channel's sends, chat by chat (see the module docstring)."""

    def __init__(
        self,
        *,
        channel: str,
        limits: RateLimits,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.channel = channel
        self.limits = limits
        self._clock = clock
        self._sleep = sleep
        self._chats: dict[str, _Bucket] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._blocked_until: dict[str, float] = {}
        self._channel = _Bucket(limits.channel_per_s, limits.channel_burst, clock())

    def blocked_for_s(self, chat: str) -> float:
        """How long ``chat`` is still flood-limited (0 when it is not)."""
        return max(0.0, self._blocked_until.get(chat, 0.0) - self._clock())

    async def send(self, chat: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run one platform call into ``chat`` within its limits; see the module docstring."""
        lock = self._locks.setdefault(chat, asyncio.Lock())
        async with lock:
            while True:
                await self._wait_turn(chat)
                try:
                    result = await call()
                except PlatformRateLimitError as exc:
                    self._block(chat, exc.retry_after_s)
                    continue  # not an attempt: the next turn waits for the platform's time
                self._chat_bucket(chat).take()
                self._channel.take()
                return result

    def _block(self, chat: str, seconds: float) -> None:
        until = self._clock() + seconds
        self._blocked_until[chat] = max(self._blocked_until.get(chat, 0.0), until)

    async def _wait_turn(self, chat: str) -> None:
        while True:
            now = self._clock()
            blocked = self.blocked_for_s(chat)
            if blocked > self.limits.max_wait_s:
                raise DeliveryError(
                    f"{self.channel} rate limit: chat {chat} may not receive messages for"
                    f" {blocked:.0f} s, longer than the {self.limits.max_wait_s:.0f} s this"
                    " host waits; the message was not sent",
                    retryable=False,
                )
            wait = max(blocked, self._chat_bucket(chat).wait_s(now), self._channel.wait_s(now))
            if wait <= 0:
                return
            if wait > self.limits.inline_wait_max_s:
                raise DeliveryDeferredError(
                    f"{self.channel} rate limit: chat {chat} waits {wait:.0f} s",
                    retry_after_s=wait,
                )
            await self._sleep(wait)

    def _chat_bucket(self, chat: str) -> _Bucket:
        bucket = self._chats.get(chat)
        if bucket is None:
            bucket = _Bucket(self.limits.per_chat_per_s, self.limits.per_chat_burst, self._clock())
            self._chats[chat] = bucket
        return bucket


class PartialSends:
    """The parts of a multi-part message already sent, so a deferred retry never repeats them.

    Keyed by the chat, thread and a digest of the payload; forgotten once the whole message is
    sent. Bounded: the oldest entries go first.
    """

    def __init__(self) -> None:
        self._sent: OrderedDict[str, list[str]] = OrderedDict()

    @staticmethod
    def key(chat: str, thread: str | None, *parts: str | bytes) -> str:
        digest = hashlib.sha256()
        for part in (chat, thread or "", *parts):
            digest.update(part.encode() if isinstance(part, str) else part)
            digest.update(b"\x00")
        return digest.hexdigest()

    def sent(self, key: str) -> list[str]:
        return self._sent.setdefault(key, [])

    def done(self, key: str) -> None:
        self._sent.pop(key, None)
        while len(self._sent) > PARTIAL_SENDS_KEPT:
            self._sent.popitem(last=False)
