"""Idle cost: host and runner CPU with ``--chats`` live, idle sessions (each answered once).

.venv/bin/python benchmarks/idle.py [--chats 5] [--seconds 20]
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
    durable_commit_ms,
    process_cpu_s,
    round_trip,
    tree_cpu_s,
    write_worker_pid,
)
from benchmarks.host_process import HostProcess  # noqa: E402 - needs the path above

RESULTS = REPO / "benchmarks" / "results" / "idle.json"
SETTLE_S = 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with HostProcess(chats=args.chats) as host:
        commit_ms = durable_commit_ms(host.data_dir / "bench")

        async def warm() -> None:
            for c in range(args.chats):
                await round_trip(host.socket_path, f"c{c}", "hello")

        asyncio.run(warm())
        time.sleep(SETTLE_S)
        # The host is its process and its session-DB write worker; the rest are runners.
        own = [host.pid] + [p for p in [write_worker_pid(host.pid)] if p is not None]
        host0, tree0 = sum(map(process_cpu_s, own)), tree_cpu_s(host.pid)
        time.sleep(args.seconds)
        host1, tree1 = sum(map(process_cpu_s, own)), tree_cpu_s(host.pid)
    host_pct = (host1 - host0) / args.seconds * 100
    runners_pct = ((tree1 - tree0) - (host1 - host0)) / args.seconds * 100
    report = {
        "benchmark": "idle",
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "durable_commit_ms": commit_ms,
        "live_idle_sessions": args.chats,
        "seconds": args.seconds,
        "goal": {"host_pct_below": 0.5, "each_runner_pct_below": 0.3},
        "host_cpu_pct": round(host_pct, 2),
        "runners_cpu_pct_total": round(runners_pct, 2),
        "each_runner_cpu_pct": round(runners_pct / args.chats, 3),
        "resolution_note": "CPU counters tick at 10 ms: over 20 s one tick is 0.05 %",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
