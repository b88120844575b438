"""Where the host's blocking work runs: one central-DB thread, a per-session pool, one I/O pool.

The event loop never blocks; every blocking call is submitted to one of three executors, built
and closed by the composition root (``build_host``):

- :class:`CentralExecutor` — one thread. Every central-DB statement runs on it; the central
  engine's one pooled connection (``CentralDB``) is used only from it.
- :class:`SessionExecutor` — session DB reads and writes (``SessionStore``, ``SessionReader``),
  keyed by session id: work for one session runs in submission order, one job at a time;
  different sessions run in parallel on a small bounded pool.
- :class:`BlockingExecutor` — blocking work that is neither: Docker API calls, subprocesses,
  files outside the session DBs (the settled-state file, runner configs, pairing codes).

The rule that keeps them deadlock-free: **a job never waits on another submission.** Jobs are
plain synchronous functions, so they cannot ``await``; a step that needs the central DB and a
session DB is two awaits at the call site (``await central.run(...)`` then
``await sessions.run(session_id, ...)``), never a job that submits and blocks on the result.
Session-DB opens inside a job still go through ``contract.confined``'s deadline-abandoning open
worker, a thread of its own: a hostile FIFO or never-returning open is abandoned at its deadline
and the session lane moves on (that worker is a security mechanism, not one of these pools).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from nanoclaw.errors import NanoclawError
from nanoclaw.os_threads import name_os_thread

P = ParamSpec("P")
T = TypeVar("T")

# Session DB work is short (open, a few statements, close); a few threads keep sessions apart.
SESSION_WORKERS = 4
# Docker calls (a stop waits up to its timeout), subprocess waits and file I/O.
BLOCKING_WORKERS = 8


class ExecutorClosedError(NanoclawError):
    """Work was submitted to an executor after the host closed it; ``executor`` names which."""

    def __init__(self, executor: str) -> None:
        super().__init__(f"the {executor} executor is closed")
        self.executor = executor


def _bind(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Callable[[], T]:
    """``fn(*args, **kwargs)`` in a copy of the caller's context (as ``asyncio.to_thread``)."""
    return functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)


class _PoolExecutor:
    """A named thread pool whose ``run`` awaits one job's result (or its exception)."""

    def __init__(self, *, name: str, workers: int) -> None:
        self.name = name
        self._closing = False
        self._threads: set[int] = set()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix=f"nanoclaw-{name}", initializer=self._enter
        )

    def _enter(self) -> None:
        self._threads.add(threading.get_ident())
        name_os_thread(f"nc-{self.name}")  # what benchmarks/throughput.py groups CPU by

    def owns_current_thread(self) -> bool:
        """Whether the caller is one of this executor's threads."""
        return threading.get_ident() in self._threads

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            future = self._pool.submit(_bind(fn, *args, **kwargs))
        except RuntimeError as exc:  # submitted after shutdown
            raise ExecutorClosedError(self.name) from exc
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._closing and future.cancelled() and (task is None or not task.cancelling()):
                # Dropped from the queue by close(), not a cancellation of the caller.
                raise ExecutorClosedError(self.name) from None
            raise

    def close(self) -> None:
        """Fail queued jobs (their callers get ExecutorClosedError); wait for running ones."""
        self._closing = True
        self._pool.shutdown(wait=True, cancel_futures=True)


class CentralExecutor(_PoolExecutor):
    """The one thread every central-DB statement runs on."""

    def __init__(self) -> None:
        super().__init__(name="central", workers=1)


class BlockingExecutor(_PoolExecutor):
    """Blocking calls that touch no database: Docker, subprocesses, host-side files."""

    def __init__(self, *, workers: int = BLOCKING_WORKERS) -> None:
        super().__init__(name="blocking", workers=workers)


@dataclass(eq=False)
class _Lane:
    """One session's queue of jobs; at most one of them is on a thread at any time."""

    jobs: deque[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] = field(
        default_factory=deque
    )
    scheduled: bool = False


class SessionExecutor:
    """Session-DB work keyed by session id: serial per session, parallel across sessions.

    Each session id has a lane (a queue); a lane with work holds at most one pool thread, and
    gives the thread back after each job, so a busy session never starves the others.
    """

    name = "session"

    def __init__(self, *, workers: int = SESSION_WORKERS) -> None:
        self._lock = threading.Lock()
        self._lanes: dict[str, _Lane] = {}
        self._threads: set[int] = set()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="nanoclaw-session", initializer=self._enter
        )

    def _enter(self) -> None:
        self._threads.add(threading.get_ident())
        name_os_thread(f"nc-{self.name}")  # what benchmarks/throughput.py groups CPU by

    def owns_current_thread(self) -> bool:
        return threading.get_ident() in self._threads

    async def run(
        self, session_id: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(*args, **kwargs)`` after every earlier job of ``session_id`` has ended."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            lane = self._lanes.get(session_id)
            if lane is None:
                lane = self._lanes[session_id] = _Lane()
            lane.jobs.append((_bind(fn, *args, **kwargs), future))
            if not lane.scheduled:
                self._schedule(session_id, lane)
        return await asyncio.wrap_future(future)

    def _schedule(self, session_id: str, lane: _Lane) -> None:
        # Caller holds self._lock.
        try:
            self._pool.submit(self._step, session_id, lane)
        except RuntimeError:  # shut down: fail every queued job of this lane
            for _job, future in lane.jobs:
                if future.set_running_or_notify_cancel():
                    future.set_exception(ExecutorClosedError(self.name))
            lane.jobs.clear()
            self._lanes.pop(session_id, None)
            return
        lane.scheduled = True

    def _step(self, session_id: str, lane: _Lane) -> None:
        """Run the lane's next job, then hand the lane back to the pool (or retire it)."""
        with self._lock:
            job, future = lane.jobs.popleft()
        if future.set_running_or_notify_cancel():  # False: its awaiter was cancelled first
            try:
                result = job()
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)
        with self._lock:
            lane.scheduled = False
            if lane.jobs:
                self._schedule(session_id, lane)
            else:
                self._lanes.pop(session_id, None)

    def busy_sessions(self) -> int:
        """How many sessions have work queued or running."""
        with self._lock:
            return len(self._lanes)

    def close(self) -> None:
        """Fail queued jobs at once, then wait for the running ones to end."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            for lane in self._lanes.values():
                for _job, future in lane.jobs:
                    if future.set_running_or_notify_cancel():
                        future.set_exception(ExecutorClosedError(self.name))
                lane.jobs.clear()
            self._lanes.clear()
        self._pool.shutdown(wait=True)


@dataclass(frozen=True, kw_only=True, eq=False)
class Executors:
    """The three executors the composition root hands to the components that block."""

    central: CentralExecutor
    sessions: SessionExecutor
    blocking: BlockingExecutor

    @classmethod
    def build(cls) -> Executors:
        return cls(
            central=CentralExecutor(), sessions=SessionExecutor(), blocking=BlockingExecutor()
        )

    async def close(self) -> None:
        """Shut every pool down; waits for running jobs on a thread of its own, off the loop."""
        await asyncio.to_thread(self.close_now)

    def close_now(self) -> None:
        self.sessions.close()
        self.central.close()
        self.blocking.close()
