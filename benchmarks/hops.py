"""CPU per executor hop (a job handed to a host thread and its result back to the event loop).

A warm message makes about seven and a half of them on the host (``docs/performance.md``).
Measured for the central executor, one session's lane, four sessions' lanes at once, and, as
the reference in the same run, ``loop.run_in_executor`` on a one-thread
``ThreadPoolExecutor`` (the ``concurrent.futures`` hop the executors made before). CPU is the
process's (every thread's) ``process_time``; each figure is the median of ``--rounds``.

    .venv/bin/python benchmarks/hops.py [--hops 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from benchmarks.common import durable_commit_ms  # noqa: E402
from nanoclaw.executors import CentralExecutor, SessionExecutor  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "hops.json"
LANES = 4


def _nothing() -> int:
    return 1


async def _per_hop_us(hops: int, one: Callable[[], Awaitable[object]], width: int) -> float:
    """CPU microseconds per hop, ``width`` callers at once."""

    async def caller() -> None:
        for _ in range(hops // width):
            await one()

    start = time.process_time()
    await asyncio.gather(*(caller() for _ in range(width)))
    return (time.process_time() - start) / hops * 1e6


async def measure(hops: int, rounds: int) -> dict[str, float]:
    central, sessions = CentralExecutor(), SessionExecutor()
    reference_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    loop = asyncio.get_running_loop()
    lane_ids = iter(range(10**9))
    kinds: dict[str, tuple[Callable[[], Awaitable[object]], int]] = {
        "central": (lambda: central.run(_nothing), 1),
        "one_session": (lambda: sessions.run("s", _nothing), 1),
        f"{LANES}_sessions_at_once": (
            lambda: sessions.run(f"s{next(lane_ids) % LANES}", _nothing),
            LANES,
        ),
        "reference_run_in_executor": (
            lambda: loop.run_in_executor(reference_pool, _nothing),
            1,
        ),
    }
    samples: dict[str, list[float]] = {name: [] for name in kinds}
    try:
        for _ in range(rounds):  # alternated, so a busy moment touches every kind alike
            for name, (one, width) in kinds.items():
                samples[name].append(await _per_hop_us(hops, one, width))
    finally:
        central.close()
        sessions.close()
        reference_pool.shutdown()
    return {name: round(statistics.median(values), 1) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hops", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nc-hops-") as scratch:
        commit_ms = durable_commit_ms(Path(scratch))
    cpu_us = asyncio.run(measure(args.hops, args.rounds))
    reference = cpu_us["reference_run_in_executor"]
    report = {
        "benchmark": "hops",
        "what": "CPU per executor hop of a no-op job, median of rounds",
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "durable_commit_ms": commit_ms,
        "hops_per_round": args.hops,
        "rounds": args.rounds,
        "cpu_us_per_hop": cpu_us,
        "ratio_to_reference": {
            name: round(value / reference, 2)
            for name, value in cpu_us.items()
            if name != "reference_run_in_executor"
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
