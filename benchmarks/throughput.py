"""Closed-loop throughput with 1/2/4/8 chats, host+runner CPU per message, share of the ceiling.

Each chat sends its next message as soon as the previous reply arrives, for ``--seconds``.
CPU is the user+system time of the host process and all its runners over the same window
(the counters ``getrusage`` reports, read from /proc), also split into the host's own, its
session-DB write worker's (a child process, ``nanoclaw.sessions.write_worker``) and its
runners', and the host's by thread (event loop, session lanes, central DB, other), with the
host's context switches per message (a count, steadier than CPU on a noisy machine). The
CPU-bound ceiling is ``cores ÷ CPU per message``; the share says how close the pipeline gets
to it.

    .venv/bin/python benchmarks/throughput.py [--seconds 10] [--chats 1 2 4 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import (  # noqa: E402
    context_switches,
    durable_commit_ms,
    process_cpu_s,
    round_trip,
    thread_cpu_s,
    tree_cpu_s,
    write_worker_pid,
)
from benchmarks.host_process import HostProcess  # noqa: E402 - needs the path above

RESULTS = REPO / "benchmarks" / "results" / "throughput.json"


async def closed_loop(socket_path: Path, chats: int, seconds: float) -> int:
    stop_at = time.monotonic() + seconds

    async def one(chat: str) -> int:
        sent = 0
        while time.monotonic() < stop_at:
            await round_trip(socket_path, chat, f"load {sent}")
            sent += 1
        return sent

    return sum(await asyncio.gather(*(one(f"c{c}") for c in range(chats))))


def run(chats: int, seconds: float) -> dict[str, float | int | dict[str, float]]:
    with HostProcess(chats=chats) as host:

        async def warm() -> None:
            await asyncio.gather(
                *(round_trip(host.socket_path, f"c{c}", "warm") for c in range(chats))
            )
            for c in range(chats):
                await round_trip(host.socket_path, f"c{c}", "warm again")

        asyncio.run(warm())
        worker = write_worker_pid(host.pid)
        worker_before = process_cpu_s(worker) if worker is not None else 0.0
        cpu_before, host_before = tree_cpu_s(host.pid), process_cpu_s(host.pid)
        threads_before = thread_cpu_s(host.pid)
        switches_before = context_switches(host.pid)
        wall_before = time.monotonic()
        done = asyncio.run(closed_loop(host.socket_path, chats, seconds))
        cpu = tree_cpu_s(host.pid) - cpu_before
        host_cpu = process_cpu_s(host.pid) - host_before
        worker_cpu = process_cpu_s(worker) - worker_before if worker is not None else 0.0
        threads = thread_cpu_s(host.pid)
        switches = context_switches(host.pid) - switches_before
        wall = time.monotonic() - wall_before
    by_thread = {
        name: round((spent - threads_before.get(name, 0.0)) / done * 1000, 2)
        for name, spent in sorted(threads.items())
        if name in ("event-loop", "nc-session", "nc-central", "nc-blocking")
    }
    # Threads that ended in the window (deadline-open workers) and unnamed ones.
    by_thread["other"] = round(host_cpu / done * 1000 - sum(by_thread.values()), 2)
    cores = os.cpu_count() or 1
    cpu_per_message_ms = cpu / done * 1000
    ceiling = cores / (cpu / done)
    rate = done / wall
    return {
        "chats": chats,
        "messages": done,
        "msgs_per_s": round(rate, 1),
        "cpu_per_message_ms": round(cpu_per_message_ms, 2),
        # The host process alone, its write worker, and its runners (the rest of the tree).
        "host_cpu_per_message_ms": round(host_cpu / done * 1000, 2),
        "write_worker_cpu_per_message_ms": round(worker_cpu / done * 1000, 2),
        "runner_cpu_per_message_ms": round((cpu - host_cpu - worker_cpu) / done * 1000, 2),
        # The host's CPU by thread: the event loop, the session lanes (with the deadline-open
        # workers they start, which inherit their name), the central DB thread.
        "host_cpu_per_message_ms_by_thread": by_thread,
        # The host's threads blocking or preempted, per message (a count, less noisy than CPU).
        "host_context_switches_per_message": round(switches / done, 1),
        "ceiling_msgs_per_s": round(ceiling, 1),
        "share_of_ceiling": round(rate / ceiling, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--chats", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with HostProcess(chats=1) as probe:
        commit_ms = durable_commit_ms(probe.data_dir / "bench")
    rows = [run(c, args.seconds) for c in args.chats]
    report = {
        "benchmark": "throughput",
        "what": "closed loop per chat through the CLI socket, process runners, mock model",
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "seconds_per_point": args.seconds,
        "durable_commit_ms": commit_ms,
        "goal": {"cpu_per_message_ms_at_most": 8, "share_of_ceiling_at_4_chats_at_least": 0.8},
        "points": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
