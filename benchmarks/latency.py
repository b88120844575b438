"""Added latency of the whole pipeline: CLI socket → router → runner (process, mock) → delivery → CLI.

Starts a real host (``nanoclaw run``) in its own process on a scratch data directory,
sends N messages one after another on a warm session (and a few in parallel chats),
and writes p50/p95/p99 to ``benchmarks/results/latency.json``. The mock model answers
instantly, so what is measured is what NanoClaw itself adds.

    .venv/bin/python benchmarks/latency.py [--messages 200] [--parallel-chats 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import durable_commit_ms, round_trip, summary  # noqa: E402
from benchmarks.host_process import HostProcess  # noqa: E402 - needs the path above

RESULTS = REPO / "benchmarks" / "results" / "latency.json"


async def measure(socket_path: Path, messages: int, chats: int) -> dict[str, object]:
    cold = await round_trip(socket_path, "c0", "cold start")
    sequential = [await round_trip(socket_path, "c0", f"message {i}") for i in range(messages)]
    for c in range(1, chats):  # warm the other chats' runners
        await round_trip(socket_path, f"c{c}", "warm up")
    parallel: list[float] = []
    for i in range(max(1, messages // chats)):
        parallel += await asyncio.gather(
            *(round_trip(socket_path, f"c{c}", f"parallel {i}") for c in range(chats))
        )
    return {
        "cold_start_ms": round(cold, 2),
        "sequential_warm": summary(sequential),
        "parallel_warm": {"chats": chats, **summary(parallel)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--parallel-chats", type=int, default=4)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    with HostProcess(chats=args.parallel_chats) as host:
        commit_ms = durable_commit_ms(host.data_dir / "bench")
        results = asyncio.run(measure(host.socket_path, args.messages, args.parallel_chats))
    for key in ("sequential_warm", "parallel_warm"):
        block = results[key]
        assert isinstance(block, dict)
        block["p50_in_commit_costs"] = round(block["p50_ms"] / commit_ms, 1)
    report = {
        "benchmark": "latency",
        "what": "send → reply through CLI socket, router, process runner (mock model), delivery",
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "durable_commit_ms": commit_ms,
        "goal": {"p50_ms_below": 50, "p99_ms_below": 250},
        "upstream_baseline_note": "upstream polls the DB every 1 s in the runner and 1 s in delivery (~1 s added)",
        **results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
