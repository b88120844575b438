"""A soak: steady traffic for ``--seconds``, host RSS sampled throughout; nothing may be lost.

A real host (``nanoclaw run``, process runners, mock model) gets a message every
``--interval`` seconds on each of ``--chats`` chats. Every ``--sample`` seconds the host's RSS
is recorded. The report says how many messages were answered, the RSS at the start and end
and its maximum, and the durable-commit cost measured in the same data dir.

    .venv/bin/python benchmarks/soak.py [--seconds 600] [--chats 4] [--interval 0.5]
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

from benchmarks.common import durable_commit_ms, round_trip, rss_mb, summary  # noqa: E402
from benchmarks.host_process import HostProcess  # noqa: E402 - needs the path above

RESULTS = REPO / "benchmarks" / "results" / "soak.json"


async def soak(
    host: HostProcess, seconds: float, chats: int, interval_s: float, sample_s: float
) -> dict[str, object]:
    stop_at = time.monotonic() + seconds
    rss: list[tuple[float, float]] = []
    latencies: list[float] = []
    failures = 0

    async def chat(c: int) -> None:
        nonlocal failures
        n = 0
        while time.monotonic() < stop_at:
            try:
                latencies.append(await round_trip(host.socket_path, f"c{c}", f"soak {n}"))
            except Exception:
                failures += 1
            n += 1
            await asyncio.sleep(interval_s)

    async def sampler() -> None:
        start = time.monotonic()
        while time.monotonic() < stop_at:
            rss.append((round(time.monotonic() - start, 1), rss_mb(host.pid)))
            await asyncio.sleep(sample_s)

    await asyncio.gather(sampler(), *(chat(c) for c in range(chats)))
    values = [v for _, v in rss]
    return {
        "answered": len(latencies),
        "not_answered": failures,
        "latency": summary(latencies),
        "rss_mb_first": values[0],
        "rss_mb_last": values[-1],
        "rss_mb_max": max(values),
        "rss_samples": rss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--chats", type=int, default=4)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--sample", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with HostProcess(chats=args.chats) as host:
        commit_ms = durable_commit_ms(host.data_dir / "bench")
        result = asyncio.run(soak(host, args.seconds, args.chats, args.interval, args.sample))
    report = {
        "benchmark": "soak",
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "seconds": args.seconds,
        "chats": args.chats,
        "interval_s": args.interval,
        "durable_commit_ms": commit_ms,
        **result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "rss_samples"}, indent=2))


if __name__ == "__main__":
    main()
