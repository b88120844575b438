"""The host's end of the session-DB write worker: starts it, sends it calls, starts it again.

Calls go out on one socket pair in the order they are made and their replies resolve futures
on the event loop: no host thread is involved. The worker is started with the host (and
again on a call after it died, at most once every ``RESPAWN_AFTER_S``, and no more once
``MAX_FAILED_STARTS`` workers in a row ended before answering); while it cannot run, a call
raises :class:`WriteWorkerUnavailableError` and the caller writes in-process instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import pickle
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanoclaw.cpu_affinity import children_unpinned, spare_cpu
from nanoclaw.errors import NanoclawError
from nanoclaw.sessions.write_protocol import (
    HEADER,
    RemoteError,
    WriteCall,
    WriteOp,
    WriteWorkerGoneError,
    check_size,
    encode,
)

log = logging.getLogger("nanoclaw.write_worker")

RESPAWN_AFTER_S = 5.0  # a worker that keeps dying is not restarted more often than this
MAX_FAILED_STARTS = 3  # workers in a row that ended before any answer: then the host writes
STOP_TIMEOUT_S = 10.0  # for the calls in flight to finish once the host closes its end
WORKER_ARGV: tuple[str, ...] = (sys.executable, "-m", "nanoclaw.sessions.write_worker")


async def read_frame(reader: asyncio.StreamReader) -> Any:
    """The worker's next reply; ``asyncio.IncompleteReadError`` at end of stream."""
    (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
    check_size(size)
    return pickle.loads(await reader.readexactly(size))


class WriteWorkerUnavailableError(NanoclawError):
    """No worker is running and none may be started now (closed, or restarted too recently)."""


@dataclass(eq=False)
class _Connection:
    process: asyncio.subprocess.Process
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    pending: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    replies: asyncio.Task[None] | None = None
    alive: bool = True
    answered: bool = False  # it has answered a call: it can work here


class WriteWorker:
    """``await worker.call(op, session_id, inbound_db, *args)`` — the op's result, or its error."""

    def __init__(
        self,
        *,
        argv: Sequence[str] = WORKER_ARGV,
        clock: Callable[[], float] = time.monotonic,
        respawn_after_s: float = RESPAWN_AFTER_S,
    ) -> None:
        self.argv = tuple(argv)
        self.clock = clock
        self.respawn_after_s = respawn_after_s
        self._conn: _Connection | None = None
        self._started_at: float | None = None
        self._starting = asyncio.Lock()
        self._ids = itertools.count(1)
        self._closed = False
        self._failed_starts = 0  # workers in a row that ended before answering anything
        self.starts = 0  # how many workers were started (status, tests)

    @property
    def pid(self) -> int | None:
        conn = self._conn
        return conn.process.pid if conn is not None and conn.alive else None

    async def start(self) -> None:
        """Start the worker now (so the first message does not wait for it); a failure is
        logged and the next call tries again."""
        try:
            await self._connection()
        except WriteWorkerUnavailableError as exc:
            log.warning("%s; writes run in the host", exc)

    async def call(
        self,
        op: WriteOp,
        session_id: str,
        inbound_db: Path,
        *args: Any,
        linger: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Run ``op(*args, **kwargs)`` on the session's inbound.db in the worker; ``linger``:
        the worker may hold it a few milliseconds to share the session's next commit."""
        conn = await self._connection()
        call_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        conn.pending[call_id] = future
        try:
            conn.writer.write(
                encode(WriteCall(call_id, op, session_id, str(inbound_db), args, kwargs, linger))
            )
            return await future
        finally:
            conn.pending.pop(call_id, None)

    async def _connection(self) -> _Connection:
        conn = self._conn
        if conn is not None and conn.alive:
            return conn
        async with self._starting:
            conn = self._conn
            if conn is not None and conn.alive:
                return conn
            if self._closed:
                raise WriteWorkerUnavailableError("the write worker is closed")
            if self._failed_starts >= MAX_FAILED_STARTS:
                raise WriteWorkerUnavailableError(
                    f"the write worker ended before its first answer {self._failed_starts} "
                    "times in a row and is not started again"
                )
            now = self.clock()
            if self._started_at is not None and now - self._started_at < self.respawn_after_s:
                raise WriteWorkerUnavailableError("the write worker was restarted too recently")
            self._started_at = now
            self._conn = await self._start()
            return self._conn

    async def _start(self) -> _Connection:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            cpu = spare_cpu()
            with children_unpinned():  # it pins itself to the spare CPU
                process = await asyncio.create_subprocess_exec(
                    *self.argv,
                    str(theirs.fileno()),
                    str(-1 if cpu is None else cpu),
                    pass_fds=(theirs.fileno(),),
                    stdin=asyncio.subprocess.DEVNULL,
                    # Its own session: a Ctrl-C in the host's terminal stops the host, whose
                    # end of the socket closing then stops the worker after its calls.
                    start_new_session=True,
                )
        except OSError as exc:
            ours.close()
            raise WriteWorkerUnavailableError(f"the write worker did not start: {exc}") from exc
        finally:
            theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        conn = _Connection(process=process, reader=reader, writer=writer)
        conn.replies = asyncio.get_running_loop().create_task(self._read_replies(conn))
        self.starts += 1
        log.debug("session-DB write worker %d started (CPU %s)", process.pid, cpu)
        return conn

    async def _read_replies(self, conn: _Connection) -> None:
        ended = "closed its socket"
        try:
            while True:
                call_id, ok, value = await read_frame(conn.reader)
                future = conn.pending.get(call_id)
                if future is None or future.done():
                    continue  # its caller was cancelled
                conn.answered = True
                if ok:
                    future.set_result(value)
                else:
                    assert isinstance(value, RemoteError)
                    future.set_exception(value.rebuild())
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception as exc:  # a frame we cannot read: this worker is not trusted again
            ended = f"sent an unreadable reply ({exc})"
        finally:
            conn.alive = False
            self._failed_starts = 0 if conn.answered else self._failed_starts + 1
            for future in conn.pending.values():
                if not future.done():
                    future.set_exception(WriteWorkerGoneError(f"the write worker {ended}"))
            conn.writer.close()
            if self._closed:
                pass
            elif self._failed_starts >= MAX_FAILED_STARTS:
                log.error(
                    "session-DB write worker %d %s before its first answer, %d times in a "
                    "row; writes run in the host from now on",
                    conn.process.pid,
                    ended,
                    self._failed_starts,
                )
            else:
                log.warning(
                    "session-DB write worker %d %s; writes run in the host until it is back",
                    conn.process.pid,
                    ended,
                )
            with contextlib.suppress(ProcessLookupError):
                if conn.process.returncode is None and not self._closed:
                    conn.process.kill()
            await conn.process.wait()

    async def close(self) -> None:
        """Let the calls in flight finish, then the worker exits (it reads end of stream)."""
        self._closed = True
        async with self._starting:  # a worker being started now is stopped too
            conn = self._conn
        if conn is None:
            return
        if conn.writer.can_write_eof():
            with contextlib.suppress(OSError):
                conn.writer.write_eof()
        try:
            await asyncio.wait_for(conn.process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                conn.process.kill()
            await conn.process.wait()
        if conn.replies is not None:
            await asyncio.gather(conn.replies, return_exceptions=True)
