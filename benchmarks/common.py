"""What the benchmarks share: percentiles and one CLI-socket round trip."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values_ms: list[float], *, digits: int = 2) -> dict[str, float]:
    return {
        "n": len(values_ms),
        "p50_ms": round(percentile(values_ms, 50), digits),
        "p95_ms": round(percentile(values_ms, 95), digits),
        "p99_ms": round(percentile(values_ms, 99), digits),
        "mean_ms": round(statistics.fmean(values_ms), digits),
        "max_ms": round(max(values_ms), digits),
    }


async def round_trip(
    socket_path: Path, chat: str, text: str, *, reply_timeout_s: float = 30.0
) -> float:
    """Milliseconds from sending ``text`` on the CLI socket to the first reply frame."""
    reader, writer = await asyncio.open_unix_connection(str(socket_path))
    frame_out = {"type": "message", "chat": chat, "sender": "bench", "text": text}
    start = time.perf_counter()
    writer.write((json.dumps(frame_out) + "\n").encode())
    await writer.drain()
    try:
        while True:
            frame = json.loads(await asyncio.wait_for(reader.readline(), reply_timeout_s))
            if frame["type"] == "reply":
                return (time.perf_counter() - start) * 1000
            if frame["type"] in ("notice", "error"):
                raise RuntimeError(frame)
    finally:
        writer.close()


def durable_commit_ms(folder: Path, *, commits: int = 200) -> float:
    """Median cost of one durable SQLite commit (journal_mode=DELETE, synchronous=FULL) in
    ``folder`` — the unit the other figures are divided by, measured on the same disk."""
    import sqlite3

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "commit-cost.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (v TEXT)")
    costs = []
    for i in range(commits):
        start = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?)", (str(i),))
        conn.execute("COMMIT")
        costs.append((time.perf_counter() - start) * 1000)
    conn.close()
    path.unlink(missing_ok=True)
    return round(statistics.median(costs), 3)


def tree_cpu_s(root_pid: int) -> float:
    """User+system CPU seconds of a process and all its live descendants (the counters
    ``getrusage`` reports, read from /proc so live runners are included)."""
    import os

    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks
    total, stack = 0.0, [root_pid]
    while stack:
        pid = stack.pop()
        total += cpu.get(pid, 0.0)
        stack.extend(child for child, parent in parents.items() if parent == pid)
    return total


def process_cpu_s(pid: int) -> float:
    """User+system CPU seconds of one process (0 when it is gone)."""
    import os

    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_s(pid: int) -> dict[str, float]:
    """User+system CPU seconds of each live thread of ``pid``, summed by the thread's kernel
    name (the host names its executors' threads ``nc-<executor>``); the main thread, which
    runs the event loop, is ``event-loop``."""
    import os

    ticks = os.sysconf("SC_CLK_TCK")
    by_name: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            raw = (task / "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        name = "event-loop" if task.name == str(pid) else raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw.rsplit(")", 1)[1].split()
        by_name[name] = by_name.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return by_name


def context_switches(pid: int) -> int:
    """Voluntary plus involuntary context switches of ``pid``'s live threads so far (a
    thread that blocks, or is preempted, counts one each time)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            lines = (task / "status").read_text().splitlines()
        except OSError:
            continue  # ended meanwhile
        for line in lines:
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


WRITE_WORKER_MODULE = "nanoclaw.sessions.write_worker"


def write_worker_pid(host_pid: int) -> int | None:
    """The host's session-DB write worker (a child running ``nanoclaw.sessions.write_worker``)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if parent == host_pid and WRITE_WORKER_MODULE.encode() in command:
            return int(entry.name)
    return None


def pss_mb(pid: int) -> float:
    """Proportional set size: shared pages split between the processes mapping them (so a
    process and its worker add up to their real memory, where RSS counts shared pages twice)."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0
