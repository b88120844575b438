"""The fake Anthropic API on its own thread and loop, for tests that drive blocking programs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tests.fakes.anthropic_server import FakeAnthropic
from tests.installer.threaded import running


@contextmanager
def fake_endpoint(*, accept_tokens: set[str] | None = None) -> Iterator[FakeAnthropic]:
    """A running ``FakeAnthropic``; with ``accept_tokens`` other credentials get the API's 401."""
    fake = FakeAnthropic(accept_tokens=accept_tokens)
    with running(fake):
        yield fake
