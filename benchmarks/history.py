"""A delivery pass costs the same with 10 or 50,000 finished messages in a session.

In-process: one session is seeded with N finished exchanges (an inbound row completed, its
ack, its reply and the reply's ``delivered`` record), the delivery loop makes its first pass
(which reads the whole history once), then the steady-state pass is timed: a new reply is
written and drained, ``--passes`` times. The durable-commit cost is measured in the same dir.
A second scenario puts a reply to deliver tomorrow in front and then drains ``--behind`` new
replies one by one: the last passes (most rows behind the waiting one) against the first.

    .venv/bin/python benchmarks/history.py [--sizes 10 50000] [--passes 50] [--behind 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent_runner.db import OutboundMessage, SessionDB  # noqa: E402

from benchmarks.common import durable_commit_ms  # noqa: E402
from benchmarks.scale import settings_for  # noqa: E402
from nanoclaw.channels.base import (  # noqa: E402
    ChannelAdapter,
    ChannelSetup,
    InboundEvent,
    OutboundPayload,
    RouteReceipt,
)
from nanoclaw.contract.timeutil import to_iso, utc_now  # noqa: E402
from nanoclaw.host import build_host  # noqa: E402 - needs the path above

RESULTS = REPO / "benchmarks" / "results" / "history.json"


def stamp(i: int) -> str:
    """Distinct, ordered timestamps one second apart, as a runner writes them.

    A second apart, not closer: the host re-reads acks changed within ``ACK_REREAD_MARGIN_S``
    (2 s) of its watermark on every pass, so rows a millisecond apart would put 2,000 acks in
    that window — a cost of a 1,000 msg/s ack rate, not of the history's size.
    """
    day, rest = divmod(i, 86_400)
    return f"2026-01-{1 + day:02d}T{rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}.000000Z"


class NullChannel(ChannelAdapter):
    channel_type = "bench"
    name = "bench"

    async def setup(self, setup: ChannelSetup) -> None:
        return None

    async def teardown(self) -> None:
        return None

    def is_connected(self) -> bool:
        return True

    async def deliver(
        self, platform_id: str, thread_id: str | None, payload: OutboundPayload
    ) -> str | None:
        return "p"


def seed(inbound: Path, outbound: Path, n: int) -> None:
    cin = sqlite3.connect(inbound, isolation_level=None)
    cout = sqlite3.connect(outbound, isolation_level=None)
    cin.execute("BEGIN")
    cout.execute("BEGIN")
    for i in range(n):
        cin.execute(
            "INSERT INTO messages_in (id, seq, kind, timestamp, status, tries, trigger, content,"
            " on_wake) VALUES (?, ?, 'chat', ?, 'completed', 0, 1, '{}', 0)",
            (f"in-{i}", 2 * i + 2, stamp(i)),
        )
        cout.execute(
            "INSERT INTO processing_ack (message_id, status, status_changed) VALUES (?, 'completed', ?)",
            (f"in-{i}", stamp(i)),
        )
        cout.execute(
            "INSERT INTO messages_out (id, seq, in_reply_to, timestamp, kind, channel_type,"
            " platform_id, content) VALUES (?, ?, ?, ?, 'chat', 'bench', 'room', '{\"text\": \"x\"}')",
            (f"out-{i}", 2 * i + 1, f"in-{i}", stamp(i)),
        )
        cin.execute(
            "INSERT INTO delivered (message_out_id, status, attempts, delivered_at)"
            " VALUES (?, 'delivered', 1, ?)",
            (f"out-{i}", stamp(i)),
        )
    cin.execute("COMMIT")
    cout.execute("COMMIT")
    cin.close()
    cout.close()


async def _no_inbound(event: InboundEvent) -> RouteReceipt | None:
    raise AssertionError(f"the history benchmark sends nothing inbound: {event}")


async def one_size(scratch: Path, n: int, passes: int, *, delayed: bool = False) -> dict[str, Any]:
    """Steady passes over a history of ``n``; ``delayed``: a reply to deliver tomorrow first."""
    settings = settings_for(scratch / f"n{n}{'-delayed' if delayed else ''}")
    # Unlimited sends: past the per-session burst the bucket would space the passes out, and
    # spaced passes cost more CPU each (cold caches), whatever the rows behind.
    settings.delivery_rate_per_session_per_s = 0
    settings.data_path.mkdir(parents=True, exist_ok=True)
    host = build_host(settings, channels=[NullChannel()])
    host.db.migrate()
    agent = host.repo.create_agent_group(name="Andy", folder="andy")
    mg = host.repo.ensure_messaging_group(channel_type="bench", platform_id="room", name="room")
    host.repo.create_wiring(messaging_group_id=mg.id, agent_group_id=agent.id)
    session, layout = host.sessions.resolve(
        agent_group_id=agent.id, messaging_group_id=mg.id, thread_id=None, mode="shared"
    )
    seed(layout.inbound_db, layout.outbound_db, n)
    runner = SessionDB(inbound_path=layout.inbound_db, outbound_path=layout.outbound_db)
    channel = host.channels.get("bench")
    assert channel is not None
    await host.channels.connect(channel, ChannelSetup(on_inbound=_no_inbound, on_action=None))
    if delayed:
        tomorrow = to_iso(utc_now() + timedelta(days=1))
        runner.send(
            OutboundMessage(
                kind="chat",
                content={"text": "tomorrow"},
                channel_type="bench",
                platform_id="room",
                deliver_after=tomorrow,
            )
        )
    start = time.perf_counter()
    await host.delivery.drain(session.id)
    first_ms = (time.perf_counter() - start) * 1000
    costs = []
    cpu_costs = []
    for i in range(passes):
        runner.send(
            OutboundMessage(
                kind="chat", content={"text": f"new {i}"}, channel_type="bench", platform_id="room"
            )
        )
        start, start_cpu = time.perf_counter(), time.process_time()
        handled = await host.delivery.drain(session.id)
        costs.append((time.perf_counter() - start) * 1000)
        cpu_costs.append((time.process_time() - start_cpu) * 1000)
        assert handled == 1
    host.db.dispose()
    if delayed:
        tenth = max(1, passes // 10)
        first, last = statistics.median(cpu_costs[:tenth]), statistics.median(cpu_costs[-tenth:])
        return {
            "rows_behind_at_the_end": passes,
            "first_tenth_pass_cpu_p50_ms": round(first, 2),
            "last_tenth_pass_cpu_p50_ms": round(last, 2),
            "cpu_ratio_last_to_first": round(last / first, 2),
        }
    return {
        "finished_messages": n,
        "first_pass_ms": round(first_ms, 2),
        "steady_pass_p50_ms": round(statistics.median(costs), 2),
        "steady_pass_cpu_p50_ms": round(statistics.median(cpu_costs), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50000])
    parser.add_argument("--passes", type=int, default=50)
    parser.add_argument("--behind", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="nc-history-"))
    try:
        commit_ms = durable_commit_ms(scratch / "bench")
        rows = [asyncio.run(one_size(scratch, n, args.passes)) for n in args.sizes]
        behind = asyncio.run(one_size(scratch, args.sizes[0], args.behind, delayed=True))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    small, large = rows[0]["steady_pass_p50_ms"], rows[-1]["steady_pass_p50_ms"]
    small_cpu, large_cpu = rows[0]["steady_pass_cpu_p50_ms"], rows[-1]["steady_pass_cpu_p50_ms"]
    report = {
        "benchmark": "history",
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "durable_commit_ms": commit_ms,
        "goal": "steady pass with the largest history within ±20 % of the smallest",
        "sizes": rows,
        "ratio_largest_to_smallest": round(large / small, 2),
        "cpu_ratio_largest_to_smallest": round(large_cpu / small_cpu, 2),
        "behind_a_delayed_row": behind,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
