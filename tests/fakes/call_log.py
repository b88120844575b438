"""What every fake platform server shares: the calls it received, and waiting for one."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Protocol


class _Call(Protocol):
    method: str


class CallLog:
    """Mixin: ``calls`` records requests in order; ``_changed`` is set whenever one arrives."""

    calls: list[Any]
    _changed: asyncio.Event

    def called(self, method: str) -> list[Any]:
        return [c for c in self.calls if c.method == method]

    async def wait_for(
        self, method: str, count: int = 1, within_s: float = 20.0, where: Any = None
    ) -> list[Any]:
        """Return once ``count`` calls of ``method`` (matching ``where``) arrived, else time out."""
        deadline = asyncio.get_running_loop().time() + within_s
        while True:
            found = [c for c in self.called(method) if where is None or where(c)]
            if len(found) >= count:
                return found
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(
                    f"{method}: {len(found)}/{count} calls; all: {[c.method for c in self.calls]}"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.2))
