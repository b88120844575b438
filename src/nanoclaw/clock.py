"""The host's one clock, injected into every component that reads the time (tests pass a fake)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

from nanoclaw.contract.timeutil import to_iso


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (intervals, idle times, rate limits)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


def now_iso(clock: Clock) -> str:
    return to_iso(clock.now())
