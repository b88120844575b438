"""The fake Anthropic API on its own thread and loop, for tests that drive blocking programs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tests.fakes.anthropic_server import FakeAnthropic


@contextmanager
def fake_endpoint(
    *, accept_tokens: set[str] | None = None, status: int | None = None
) -> Iterator[FakeAnthropic]:
    """A running ``FakeAnthropic``; ``status`` makes every answer that HTTP error."""
    loop = asyncio.new_event_loop()
    fake = FakeAnthropic(accept_tokens=accept_tokens)
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        fake.arrived = asyncio.Event()
        loop.run_until_complete(fake.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, name="fake-anthropic", daemon=True)
    thread.start()
    ready.wait(10)
    if status is not None:
        from tests.fakes.anthropic_server import error

        fake.push(*[error(status, "scripted failure", retry=False) for _ in range(100)])
    try:
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
