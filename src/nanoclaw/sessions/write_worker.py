"""The session-DB write worker: a child of ``nanoclaw run`` that commits its hot inbound.db writes.

The host's Python runs under one GIL on one CPU (``nanoclaw.cpu_affinity``); the two durable
writes of every message (the inbound row, the delivery record) cost about a third of its CPU.
This process runs them on another CPU, so the host's loop is not waiting behind them. It is
still the host (invariant 1: the host writes ``inbound.db``; its own rare writes there and these
are ordered by SQLite's ``BEGIN IMMEDIATE``), it opens only the files the host names, through
the same probe (invariant 6), and it exits when the host's end of the socket closes.

One lane per session, as in the host's ``SessionExecutor``: a locked or damaged ``inbound.db``
delays only its own session's writes, and one session's calls run in the order they arrived.
The main thread reads calls; a lane's thread runs them and sends each reply itself.

    python -m nanoclaw.sessions.write_worker <socket fd> <cpu or -1>
"""

from __future__ import annotations

import collections
import logging
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from nanoclaw.contract import sessiondb
from nanoclaw.cpu_affinity import pin_host_threads
from nanoclaw.executors import SESSION_WORKERS
from nanoclaw.sessions.inbound_rows import Inserted, insert_rows, record_delivery_row
from nanoclaw.sessions.write_protocol import (
    RemoteError,
    WriteCall,
    WriteOp,
    encode,
    read_frame_blocking,
)

log = logging.getLogger("nanoclaw.write_worker")


def run_call(call: WriteCall) -> Inserted | None:
    """One write on the session's inbound.db, in its own transaction."""
    with sessiondb.writing(Path(call.inbound_db), confined=True) as conn:
        if call.op is WriteOp.INSERT_MESSAGES:
            return insert_rows(conn, *call.args, **call.kwargs)
        record_delivery_row(conn, *call.args, **call.kwargs)
        return None


class Lanes:
    """Per-session FIFO queues drained on a bounded pool; ``reply`` is called with each
    call's (id, ok, result or :class:`RemoteError`) from the thread that ran it."""

    def __init__(self, *, reply: Any, workers: int = SESSION_WORKERS) -> None:
        self.reply = reply
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nc-write")
        self._queues: dict[str, collections.deque[WriteCall]] = {}
        self._lock = threading.Lock()

    def submit(self, call: WriteCall) -> None:
        with self._lock:
            queue = self._queues.get(call.session_id)
            if queue is not None:  # its lane is running: it takes this call next
                queue.append(call)
                return
            self._queues[call.session_id] = collections.deque([call])
        self._pool.submit(self._drain, call.session_id)

    def _drain(self, session_id: str) -> None:
        while True:
            with self._lock:
                queue = self._queues[session_id]
                if not queue:
                    del self._queues[session_id]
                    return
                call = queue.popleft()
            try:
                answer: tuple[int, bool, Any] = (call.call_id, True, run_call(call))
            except Exception as exc:
                answer = (call.call_id, False, RemoteError.of(exc))
            self.reply(answer)

    def close(self) -> None:
        """Every call already submitted runs and is answered first."""
        self._pool.shutdown(wait=True)


def serve(sock: socket.socket) -> None:
    """Answer calls until the host closes its end; the calls in flight then finish."""
    send_lock = threading.Lock()

    def reply(answer: tuple[int, bool, Any]) -> None:
        frame = encode(answer)
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
    except KeyboardInterrupt:  # a Ctrl-C in the host's terminal reaches us too
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
