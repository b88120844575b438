"""Memory the delivery loop's ack state keeps per served session, now and as it was before.

Every session the host has served keeps an ``AckTracker`` entry until the host stops. This
drives the real tracker as a delivery pass does (each message acked ``processing``, then
``completed``, one in ten ``failed``; each finished turn reported) for ``--messages`` turns in
each of ``--sessions`` sessions, and measures what it holds with ``tracemalloc``, projected to
1,000 sessions. The same run repeats it as the tracker was before (512 reported ids and 512
failed verdicts kept, verdicts kept after their report) for the ratio.

    .venv/bin/python benchmarks/session_state.py [--sessions 200] [--messages 600]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from nanoclaw.contract.sessiondb import AckRow  # noqa: E402 - needs the path above
from nanoclaw.contract.timeutil import to_iso  # noqa: E402
from nanoclaw.delivery import acks  # noqa: E402
from nanoclaw.ids import new_id  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "session_state.json"
OLD_KEPT = 512


def serve(sessions: int, messages: int, *, drop_verdicts: bool) -> int:
    """Bytes the tracker holds after ``messages`` turns in each of ``sessions`` sessions
    (``drop_verdicts``: as ``DeliveryLoop.report_done`` does after its listeners ran)."""
    start = datetime(2030, 1, 1, tzinfo=UTC)
    tracemalloc.start()
    tracker = acks.AckTracker()
    for s in range(sessions):
        session_id = f"sess-{s}"
        for m in range(messages):
            message_id = new_id("msg")
            at = start + timedelta(seconds=m)
            tracker.changed(session_id, [AckRow(message_id, "processing", to_iso(at))])
            final = "failed" if m % 10 == 0 else "completed"
            tracker.changed(session_id, [AckRow(message_id, final, to_iso(at))])
            reported = tracker.take_unreported(session_id, set(tracker.owed(session_id)))
            tracker.failed_among(session_id, reported)  # the CLI's turn-done listener asks
            if drop_verdicts:
                tracker.drop_verdicts(session_id, reported)
    held, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del tracker
    return held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--messages", type=int, default=600)
    args = parser.parse_args()
    kept = {"reported": acks.REPORTED_KEPT, "failed": acks.FAILED_KEPT}
    now_bytes = serve(args.sessions, args.messages, drop_verdicts=True)
    # Before: 512 of each kept, verdicts kept after their report.
    acks.REPORTED_KEPT = acks.FAILED_KEPT = OLD_KEPT
    old_bytes = serve(args.sessions, args.messages, drop_verdicts=False)
    per_session_now = now_bytes / args.sessions
    per_session_old = old_bytes / args.sessions
    result = {
        "benchmark": "session_state",
        "machine": {"python": platform.python_version(), "system": platform.platform()},
        "sessions": args.sessions,
        "messages_per_session": args.messages,
        "kept_ids": kept,
        "bytes_per_session": round(per_session_now),
        "mb_at_1000_sessions": round(per_session_now * 1000 / 2**20, 2),
        "old_kept_ids": OLD_KEPT,
        "old_bytes_per_session": round(per_session_old),
        "old_mb_at_1000_sessions": round(per_session_old * 1000 / 2**20, 2),
        "ratio_old_to_now": round(per_session_old / per_session_now, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
