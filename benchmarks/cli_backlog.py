"""What the terminal channel's durable backlog costs: store, ack, drop at the bound, replay.

Run: ``.venv/bin/python -m benchmarks.cli_backlog``; writes ``benchmarks/results/cli_backlog.json``.
Each figure is also given in durable-commit costs measured in the same run on the same disk.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from nanoclaw.channels.base import ChannelSetup, InboundEvent, RouteReceipt
from nanoclaw.channels.cli.adapter import CliAdapter
from nanoclaw.channels.cli.backlog import CliBacklog
from nanoclaw.db.central import CentralDB
from nanoclaw.executors import Executors

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import durable_commit_ms  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "cli_backlog.json"
REPLIES = 1_000
BOUND = 10_000
REPLAYED = 10_000


def timed_ms(call: object, times: int) -> list[float]:
    assert callable(call)
    costs = []
    for i in range(times):
        start = time.perf_counter()
        call(i)
        costs.append((time.perf_counter() - start) * 1000)
    return costs


async def replay_ms(folder: Path, backlog: CliBacklog) -> float:
    """Milliseconds from a client's hello to ``ready`` with ``REPLAYED`` replies waiting."""
    frame = json.dumps({"type": "reply", "chat": "replay", "text": "x" * 200})
    for _ in range(REPLAYED):
        backlog.add("replay", frame)

    async def nothing(event: InboundEvent) -> RouteReceipt:
        return RouteReceipt(0, ())

    executors = Executors.build()
    adapter = CliAdapter(executors=executors, socket_path=folder / "b.sock", backlog=backlog)
    await adapter.setup(ChannelSetup(on_inbound=nothing))
    try:
        reader, writer = await asyncio.open_unix_connection(str(adapter.socket_path))
        start = time.perf_counter()
        writer.write(b'{"type":"hello","chat":"replay"}\n')
        await writer.drain()
        replies = 0
        while True:
            got = json.loads(await reader.readline())
            if got["type"] == "ready":
                break
            replies += 1
        elapsed = (time.perf_counter() - start) * 1000
        writer.close()
        assert replies == REPLAYED, replies
        return elapsed
    finally:
        await adapter.teardown()
        await executors.close()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="nc-bench-", dir="/tmp") as tmp:
        folder = Path(tmp)
        commit = durable_commit_ms(folder)
        db = CentralDB(path=folder / "central.db", migrations_root=REPO / "migrations")
        db.migrate()
        backlog = CliBacklog(db=db, per_chat_max=BOUND)
        frame = json.dumps({"type": "reply", "chat": "local", "text": "hello " * 20})
        ids: list[int] = []
        add = timed_ms(
            lambda i: ids.append(backlog.add("local", frame, delivery_key=f"s/{i}")[0]), REPLIES
        )
        ack = timed_ms(lambda i: backlog.ack("local", [ids[i]]), REPLIES)
        for _ in range(BOUND):
            backlog.add("full", frame)
        at_bound = timed_ms(lambda i: backlog.add("full", frame), 200)
        replay = asyncio.run(replay_ms(folder, CliBacklog(db=db)))
        db.dispose()
    result = {
        "durable_commit_ms": round(commit, 3),
        "store_reply_ms_p50": round(statistics.median(add), 3),
        "ack_reply_ms_p50": round(statistics.median(ack), 3),
        "store_at_bound_ms_p50": round(statistics.median(at_bound), 3),
        "replay_10000_ms": round(replay, 1),
        "replay_per_reply_us": round(replay * 1000 / REPLAYED, 1),
        "store_in_commits": round(statistics.median(add) / commit, 2),
        "ack_in_commits": round(statistics.median(ack) / commit, 2),
        "store_at_bound_in_commits": round(statistics.median(at_bound) / commit, 2),
        "replies": REPLIES,
        "bound": BOUND,
        "note": "central DB in WAL; commit cost = journal_mode=DELETE, synchronous=FULL, same disk",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
