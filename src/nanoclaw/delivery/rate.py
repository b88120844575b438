"""A token bucket: a per-session ceiling on sends that waits rather than drops."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class TokenBucket:
    """``rate_per_s`` tokens a second up to ``burst``; ``acquire`` waits for one (never fails).

    A rate of 0 means unlimited.
    """

    def __init__(self, *, rate_per_s: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate_per_s = rate_per_s
        self.burst = max(1, burst)
        self.clock = clock
        self._tokens = float(self.burst)
        self._at = clock()
        self._lock = asyncio.Lock()  # waiters are served in arrival order

    def _refill(self) -> None:
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate_per_s)
        self._at = now

    async def acquire(self) -> None:
        if self.rate_per_s <= 0:
            return
        async with self._lock:
            self._refill()
            while self._tokens < 1.0:
                await asyncio.sleep((1.0 - self._tokens) / self.rate_per_s)
                self._refill()
            self._tokens -= 1.0
