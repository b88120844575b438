"""A repeating fault is logged once per interval, not once per attempt (host and runner)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable

REPEAT_LOG_INTERVAL_S = 300.0
FAULTS_KEPT = 4096


class FaultLog:
    """Per key (e.g. session + exception type + message): the first occurrence is logged, then
    at most one line per ``interval_s`` saying how many repeats it stood for."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval_s: float = REPEAT_LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self.clock = clock
        self._seen: dict[Hashable, tuple[float, int]] = {}  # key -> (last logged, repeats since)

    def report(
        self, key: Hashable, level: int, msg: str, *args: object, exc_info: bool = False
    ) -> bool:
        """Log unless the same fault was logged less than an interval ago; True when logged."""
        now = self.clock()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self.interval_s:
            self._seen[key] = (last[0], last[1] + 1)
            return False
        repeats = last[1] if last is not None else 0
        suffix = f" (repeated {repeats} more time(s) since last logged)" if repeats else ""
        self.logger.log(level, msg + suffix, *args, exc_info=exc_info)
        self._seen[key] = (now, 0)
        if len(self._seen) > FAULTS_KEPT:
            self._seen.pop(next(iter(self._seen)))
        return True

    def clear(self, key: Hashable) -> None:
        """The fault is over: its next occurrence is logged at once."""
        self._seen.pop(key, None)

    def clear_matching(self, predicate: Callable[[Hashable], bool]) -> None:
        for key in [k for k in self._seen if predicate(k)]:
            del self._seen[key]


def fault_key(scope: str, exc: BaseException) -> tuple[str, str, str]:
    """The identity of a fault: where, which exception type, which message (bounded)."""
    return (scope, type(exc).__name__, str(exc)[:300])
