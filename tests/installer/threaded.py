"""Run an asyncio fake server on its own thread and loop, for tests that drive blocking programs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class _Fake(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fake-loop", daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@contextmanager
def running(fake: _Fake) -> Iterator[LoopThread]:
    thread = LoopThread()
    thread.call(fake.start())
    try:
        yield thread
    finally:
        thread.call(fake.stop())
        thread.close()
