"""The session-DB write worker: a child of ``nanoclaw run`` that commits its hot inbound.db writes.

The host's Python runs under one GIL on one CPU (``nanoclaw.cpu_affinity``); the two durable
writes of every message (the inbound row, the delivery record) cost about a third of its CPU.
This process runs them on another CPU, so the host's loop is not waiting behind them. It is
still the host (invariant 1: the host writes ``inbound.db``; its own rare writes there and these
are ordered by SQLite's ``BEGIN IMMEDIATE``), it opens only the files the host names, through
the same probe (invariant 6), and it exits when the host's end of the socket closes.

One lane per session, as in the host's ``SessionExecutor``: a locked or damaged ``inbound.db``
delays only its own session's writes, and one session's calls run in the order they arrived.
The main thread reads calls; a lane's thread runs them and sends each reply itself, after the
commit that holds it. Calls queued for one session share one transaction (group commit), each
in a savepoint of its own, so one call's error fails only that call; a call marked ``linger``
(the delivery record of a pass's last reply) waits up to ``LINGER_S`` for company first,
parked without holding a thread.

    python -m nanoclaw.sessions.write_worker <socket fd> <cpu or -1>
"""

from __future__ import annotations

import collections
import logging
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from nanoclaw.contract import sessiondb
from nanoclaw.cpu_affinity import pin_host_threads
from nanoclaw.sessions.inbound_rows import Inserted, insert_rows, record_delivery_row
from nanoclaw.sessions.write_protocol import (
    RemoteError,
    WriteCall,
    WriteOp,
    encode,
    read_frame_blocking,
)

log = logging.getLogger("nanoclaw.write_worker")


LINGER_S = 0.005  # about a client's round trip plus routing: the next message's insert
MAX_BATCH_CALLS = 64  # calls of one session in one transaction
LANE_THREADS = 4  # as many as the host's SessionExecutor has

Answer = tuple[int, bool, Any]  # (call id, ok, result or RemoteError)


def _apply(conn: sqlite3.Connection, call: WriteCall) -> Inserted | None:
    if call.op is WriteOp.INSERT_MESSAGES:
        return insert_rows(conn, *call.args, **call.kwargs)
    record_delivery_row(conn, *call.args, **call.kwargs)
    return None


def run_batch(calls: list[WriteCall]) -> list[Answer]:
    """One session's calls in one transaction; an answer per call, all after the commit.

    A call that raises is rolled back to its savepoint and answered with its error; if the
    transaction itself fails (open, probe, commit, or SQLite rolled it back, as on a full disk),
    every call is answered with that error, none having committed.
    """
    answers: list[Answer] = []
    try:
        with sessiondb.writing(Path(calls[0].inbound_db), confined=True) as conn:
            if len(calls) == 1:
                answers.append((calls[0].call_id, True, _apply(conn, calls[0])))
                return answers
            for call in calls:
                conn.execute("SAVEPOINT call")
                try:
                    result = _apply(conn, call)
                except Exception as exc:
                    if not conn.in_transaction:  # SQLite rolled it all back: so do all calls
                        raise
                    conn.execute("ROLLBACK TO call")
                    answers.append((call.call_id, False, RemoteError.of(exc)))
                else:
                    answers.append((call.call_id, True, result))
                conn.execute("RELEASE call")
    except Exception as exc:
        return [(call.call_id, False, RemoteError.of(exc)) for call in calls]
    return answers


class Lanes:
    """Per-session FIFO queues drained on a bounded pool; ``reply`` is called with each
    call's answer from the thread that ran it.

    A session whose only queued call lingers is parked, holding no thread: the next call of
    the session, the linger's deadline (one timer thread for all) or ``close`` drains it.
    """

    def __init__(
        self,
        *,
        reply: Callable[[Answer], None],
        workers: int = LANE_THREADS,
        linger_s: float = LINGER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reply = reply
        self.linger_s = linger_s
        self.clock = clock
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nc-write")
        # A session is in ``_queues`` while its lane runs or is parked, in ``_parked`` (with
        # its deadline and the call that lingers) only while parked.
        self._queues: dict[str, collections.deque[WriteCall]] = {}
        self._parked: dict[str, tuple[float, int]] = {}
        self._changed = threading.Condition()
        self._timer: threading.Thread | None = None
        self._closing = False

    @property
    def parked(self) -> int:
        """Sessions waiting for company now (tests)."""
        with self._changed:
            return len(self._parked)

    def submit(self, call: WriteCall) -> None:
        with self._changed:
            queue = self._queues.get(call.session_id)
            if queue is not None:
                queue.append(call)
                if self._parked.pop(call.session_id, None) is None:
                    return  # its lane is running: it takes this call next
            else:
                self._queues[call.session_id] = collections.deque([call])
                if call.linger and not self._closing:
                    self._park(call.session_id, call.call_id)
                    return
        self._pool.submit(self._drain, call.session_id)

    def _park(self, session_id: str, call_id: int) -> None:
        """Under ``_changed``: hold the session's lone lingering call until its deadline."""
        if not self._parked:  # the timer may be sleeping without a deadline
            self._changed.notify_all()
        self._parked[session_id] = (self.clock() + self.linger_s, call_id)
        if self._timer is None:
            self._timer = threading.Thread(
                target=self._wake_parked, name="nc-write-linger", daemon=True
            )
            self._timer.start()

    def _wake_parked(self) -> None:
        with self._changed:
            while True:
                now = self.clock()
                for session_id, (deadline, call_id) in list(self._parked.items()):
                    if deadline <= now or self._closing:
                        del self._parked[session_id]
                        self._pool.submit(self._drain, session_id, call_id)
                if self._closing:
                    return
                deadlines = [deadline for deadline, _ in self._parked.values()]
                self._changed.wait(min(deadlines) - now if deadlines else None)

    def _drain(self, session_id: str, lingered: int | None = None) -> None:
        """Run the session's queued calls until none is left; ``lingered``: the call whose
        linger just ended (it is not parked again)."""
        batch: list[WriteCall] = []
        try:
            while True:
                with self._changed:
                    queue = self._queues[session_id]
                    if not queue:
                        del self._queues[session_id]
                        return
                    head = queue[0]
                    if (
                        len(queue) == 1
                        and head.linger
                        and head.call_id != lingered
                        and not self._closing
                    ):
                        self._park(session_id, head.call_id)
                        return
                    batch = [queue.popleft() for _ in range(min(len(queue), MAX_BATCH_CALLS))]
                for answer in run_batch(batch):
                    self.reply(answer)
                batch = []
        except Exception as exc:  # a bug: still, no call of this session waits forever
            log.exception("the write lane of session %s failed", session_id)
            with self._changed:
                left = [*batch, *self._queues.pop(session_id, ())]
                self._parked.pop(session_id, None)
            error = RemoteError.of(exc)
            for call in left:  # a call answered already: the host ignores a second answer
                self.reply((call.call_id, False, error))

    def close(self) -> None:
        """Every call already submitted runs and is answered first (parked ones at once)."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
            timer = self._timer
        if timer is not None:
            timer.join()
        self._pool.shutdown(wait=True)


def serve(sock: socket.socket) -> None:
    """Answer calls until the host closes its end; the calls in flight then finish."""
    send_lock = threading.Lock()

    def reply(answer: Answer) -> None:
        try:
            frame = encode(answer)
        except Exception as exc:  # a result that does not travel: its caller learns why
            frame = encode((answer[0], False, RemoteError.of(exc)))
        with send_lock:
            try:
                sock.sendall(frame)
            except OSError:  # the host is gone: nobody is waiting for this answer
                pass

    lanes = Lanes(reply=reply)
    try:
        with sock.makefile("rb") as calls:
            while True:
                try:
                    call = read_frame_blocking(calls)
                except (EOFError, ConnectionError):
                    break
                lanes.submit(call)
    finally:
        lanes.close()
        sock.close()


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    fd, cpu = int(argv[1]), int(argv[2])
    if cpu >= 0:  # before any thread starts, so the lanes' threads inherit it
        pin_host_threads(enabled=True, cpu=cpu)
    try:
        serve(socket.socket(fileno=fd))
    except KeyboardInterrupt:  # its own session: only a SIGINT sent to it on purpose
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
