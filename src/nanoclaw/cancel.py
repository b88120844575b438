"""Cancel a task and wait for it without swallowing the caller's own cancellation.

``task.cancel(); with suppress(CancelledError): await task`` is wrong: if the CALLER is
cancelled while it waits, the ``CancelledError`` it receives is its own, and ``suppress``
eats it, so the caller runs on. That is how the delivery loop survived ``Host.stop`` (its
turn-done listener stopped a typing indicator this way), ``Host.stop`` waited for it forever,
and the runners were never told to stop (issue #10's 120 s teardown hang in ``waitpid``).
``asyncio.wait`` never raises the task's outcome and lets the caller's cancellation through.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("nanoclaw.cancel")


async def cancel_and_wait(task: asyncio.Future[Any], *, timeout_s: float | None = None) -> bool:
    """Cancel ``task`` and wait (at most ``timeout_s``) until it ended; True when it did."""
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if not done:
        return False
    if not task.cancelled() and task.exception() is not None:
        log.debug("task %r ended with %r while being cancelled", task, task.exception())
    return True
