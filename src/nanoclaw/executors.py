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
import contextvars
import functools
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, Protocol, TypeVar

from nanoclaw.cpu_affinity import pin_calling_thread, unpin_calling_thread
from nanoclaw.errors import NanoclawError
from nanoclaw.os_threads import name_os_thread

log = logging.getLogger("nanoclaw.executors")

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


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """On the awaiting loop: hand over the job's outcome unless its awaiter gave up."""
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class _Job:
    """One submitted call and the asyncio future its caller awaits on its own loop.

    The outcome reaches the loop with one ``call_soon_threadsafe``: no ``concurrent.futures``
    future and no ``wrap_future`` chain in between (each hop is on a message's path, several
    times over).
    """

    __slots__ = ("call", "future", "loop")

    def __init__(self, call: Callable[[], Any]) -> None:
        self.call = call
        self.loop = asyncio.get_running_loop()
        self.future: asyncio.Future[Any] = self.loop.create_future()

    def run(self) -> None:
        if self.future.cancelled():  # its awaiter was cancelled before the job started
            return
        try:
            result = self.call()
        except BaseException as exc:
            self._hand_over(None, exc)
        else:
            self._hand_over(result, None)

    def fail(self, error: BaseException) -> None:
        self._hand_over(None, error)

    def _hand_over(self, result: Any, error: BaseException | None) -> None:
        try:
            self.loop.call_soon_threadsafe(_settle, self.future, result, error)
        except RuntimeError:  # its loop has closed: nobody awaits the outcome
            pass


class _Task(Protocol):
    """What a worker thread runs: ``run`` reports its own outcome; ``fail`` is called instead
    when the executor closes before the task started."""

    def run(self) -> None: ...

    def fail(self, error: BaseException) -> None: ...


class _Threads:
    """Worker threads taking tasks in submission order; started as needed, up to ``workers``.

    Each idle thread sleeps on a gate of its own and ``submit`` opens exactly one gate: one
    wake-up per task. (Idle threads blocked together on one ``queue.SimpleQueue`` woke each
    other: its ``get`` releases the shared lock after taking an item, so every task also woke
    a second idle thread, which took the GIL only to find the queue empty and sleep again.)
    """

    def __init__(
        self, *, name: str, workers: int, on_start: Callable[[], None] | None = None
    ) -> None:
        self.name = name
        self.workers = workers
        self._on_start = on_start  # run first on each new thread
        self._lock = threading.Lock()
        self._tasks: deque[_Task] = deque()
        # The gates of idle threads, each held; the most recently idle one is woken first.
        self._sleeping: list[threading.Lock] = []
        self._threads: list[threading.Thread] = []
        self._idents: set[int] = set()
        self._closed = False

    def submit(self, task: _Task) -> None:
        gate = None
        with self._lock:
            if self._closed:
                raise ExecutorClosedError(self.name)
            if self._sleeping:
                gate = self._sleeping.pop()
            elif len(self._threads) < self.workers:
                thread = threading.Thread(
                    target=self._work, name=f"nanoclaw-{self.name}_{len(self._threads)}"
                )
                thread.daemon = True
                thread.start()  # a failed start raises before the task is queued
                self._threads.append(thread)
            self._tasks.append(task)
        if gate is not None:
            gate.release()  # outside the lock: the woken thread takes it at once

    def owns_current_thread(self) -> bool:
        return threading.get_ident() in self._idents

    def _work(self) -> None:
        name_os_thread(f"nc-{self.name}")  # what benchmarks/throughput.py groups CPU by
        if self._on_start is not None:
            self._on_start()
        gate = threading.Lock()
        gate.acquire()
        with self._lock:
            self._idents.add(threading.get_ident())
        while True:
            with self._lock:
                if self._tasks:
                    task = self._tasks.popleft()
                elif self._closed:
                    return
                else:
                    self._sleeping.append(gate)
                    task = None
            if task is None:
                gate.acquire()  # opened by submit (a task is queued) or close
                continue
            try:
                task.run()
            except BaseException:  # a task reports its own outcome; this keeps the thread
                log.exception("%s executor task failed", self.name)

    def close(self) -> None:
        """Refuse new tasks, fail each queued one, wait for the running ones."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
            queued = list(self._tasks)
            self._tasks.clear()
            sleeping, self._sleeping = self._sleeping, []
        for task in queued:
            task.fail(ExecutorClosedError(self.name))
        for gate in sleeping:
            gate.release()
        for thread in threads:
            if thread.ident != threading.get_ident():
                thread.join()


class _PoolExecutor:
    """A named set of threads whose ``run`` awaits one job's result (or its exception)."""

    def __init__(
        self, *, name: str, workers: int, on_start: Callable[[], None] | None = None
    ) -> None:
        self.name = name
        self._threads = _Threads(name=name, workers=workers, on_start=on_start)

    def owns_current_thread(self) -> bool:
        """Whether the caller is one of this executor's threads."""
        return self._threads.owns_current_thread()

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        job = _Job(_bind(fn, *args, **kwargs))
        self._threads.submit(job)
        result: T = await job.future
        return result

    def close(self) -> None:
        """Fail queued jobs (their callers get ExecutorClosedError); wait for running ones."""
        self._threads.close()


class CentralExecutor(_PoolExecutor):
    """The one thread every central-DB statement runs on (on the host's CPU when pinned)."""

    def __init__(self) -> None:
        super().__init__(name="central", workers=1, on_start=pin_calling_thread)


class BlockingExecutor(_PoolExecutor):
    """Blocking calls that touch no database: Docker, subprocesses, host-side files.

    Its threads (and the processes they start) run on every CPU the host started with, not on
    the one its Python threads are pinned to (:mod:`nanoclaw.cpu_affinity`).
    """

    def __init__(self, *, workers: int = BLOCKING_WORKERS) -> None:
        super().__init__(name="blocking", workers=workers, on_start=unpin_calling_thread)


@dataclass(eq=False)
class _Lane:
    """One session's queue of jobs; at most one of them is on a thread at any time."""

    jobs: deque[_Job] = field(default_factory=deque)
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
        self._threads = _Threads(name=self.name, workers=workers, on_start=pin_calling_thread)

    def owns_current_thread(self) -> bool:
        return self._threads.owns_current_thread()

    async def run(
        self, session_id: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(*args, **kwargs)`` after every earlier job of ``session_id`` has ended."""
        job = _Job(_bind(fn, *args, **kwargs))
        with self._lock:
            lane = self._lanes.get(session_id)
            if lane is None:
                lane = self._lanes[session_id] = _Lane()
            lane.jobs.append(job)
            schedule = not lane.scheduled
            lane.scheduled = True
        if schedule:
            self._schedule(session_id, lane)
        result: T = await job.future
        return result

    def _schedule(self, session_id: str, lane: _Lane) -> None:
        # Called without self._lock, once the lane is marked scheduled: a thread woken by the
        # submit takes that lock first, and would only block on a caller still holding it.
        try:
            self._threads.submit(_LaneStep(self, session_id, lane))
        except ExecutorClosedError:  # closed: fail every queued job of this lane
            with self._lock:
                self._drop(session_id, lane)
        except Exception as exc:  # no thread could start: fail them, never leave them queued
            with self._lock:
                self._drop(session_id, lane, exc)

    def _step(self, session_id: str, lane: _Lane) -> None:
        """Run the lane's next job, then hand the lane back to the pool (or retire it)."""
        with self._lock:
            if not lane.jobs:  # failed by close() meanwhile
                return
            job = lane.jobs.popleft()
        job.run()
        with self._lock:
            again = bool(lane.jobs)
            if not again:
                lane.scheduled = False
                self._lanes.pop(session_id, None)
        if again:
            self._schedule(session_id, lane)

    def busy_sessions(self) -> int:
        """How many sessions have work queued or running."""
        with self._lock:
            return len(self._lanes)

    def close(self) -> None:
        """Fail queued jobs at once, then wait for the running ones to end."""
        # Threads first: from here no step is queued, so no job can be left unanswered; the
        # queued steps fail their lanes' jobs, and a running one's lane fails when it ends.
        self._threads.close()
        with self._lock:
            for lane in self._lanes.values():
                self._fail(lane)
            self._lanes.clear()

    def _fail(self, lane: _Lane, error: BaseException | None = None) -> None:
        # Caller holds self._lock.
        for job in lane.jobs:
            job.fail(error or ExecutorClosedError(self.name))
        lane.jobs.clear()

    def _drop(self, session_id: str, lane: _Lane, error: BaseException | None = None) -> None:
        """Fail the lane's queued jobs (closed, unless ``error`` says why) and retire it
        (unless a newer lane took its place)."""
        # Caller holds self._lock.
        self._fail(lane, error)
        if self._lanes.get(session_id) is lane:
            del self._lanes[session_id]


@dataclass(frozen=True, eq=False)
class _LaneStep:
    """A lane's turn on a thread: its next job (a closed executor has failed its jobs)."""

    executor: SessionExecutor
    session_id: str
    lane: _Lane

    def run(self) -> None:
        self.executor._step(self.session_id, self.lane)

    def fail(self, error: BaseException) -> None:
        with self.executor._lock:
            self.executor._drop(self.session_id, self.lane)


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
