"""The one owner of the host's background tasks: every task is named, tracked, logged if it dies
and cancelled and awaited on close (the host's equivalent of an ``asyncio.TaskGroup`` whose
members may end on their own without ending the group)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger("nanoclaw.tasks")

Spawn = Callable[[Coroutine[Any, Any, Any], str], None]


class TaskOwner:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._opened = False
        self._closed = False

    def open(self) -> None:
        """Mark the owner in use; a second open (a host started twice) raises."""
        if self._opened:
            raise RuntimeError("already started")
        self._opened = True

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Run ``coro`` in the background; after :meth:`close` it is closed unrun."""
        if self._closed:
            coro.close()
            return
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def spawn_threadsafe(
        self,
        loop: asyncio.AbstractEventLoop,
        make: Callable[[], Coroutine[Any, Any, Any]],
        name: str,
    ) -> None:
        """:meth:`spawn` from another thread (the coroutine is made on the loop's thread)."""
        if not loop.is_closed():
            loop.call_soon_threadsafe(lambda: self.spawn(make(), name))

    def names(self) -> list[str]:
        return sorted(t.get_name() for t in self._tasks)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s died", task.get_name(), exc_info=task.exception())

    async def close(self, *, timeout_s: float | None = None) -> list[str]:
        """Cancel every task and wait for them, at most ``timeout_s``; later spawns are refused.

        Bounded, and never swallowing the caller's own cancellation (``asyncio.wait`` does not
        absorb it): whatever a task does, the caller goes on (issue #10's teardown hang). Returns
        the names of tasks still running when the time ran out.
        """
        self._closed = True
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while self._tasks:
            pending = list(self._tasks)
            for task in pending:
                task.cancel()
            left = None if deadline is None else max(0.0, deadline - loop.time())
            _, stuck = await asyncio.wait(pending, timeout=left)
            if stuck:
                names = sorted(t.get_name() for t in stuck)
                log.error("tasks still running after stop: %s", names)
                return names
        return []
