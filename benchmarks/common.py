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
