"""An imported v1 task every 90 minutes fires every 90 minutes exactly, anchored to its scheduled time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from nanoclaw.contract.timeutil import parse_iso
from nanoclaw.errors import ValidationError
from nanoclaw.scheduling.cron import next_fire, previous_fire, validate_cron
from nanoclaw.scheduling.recurrence import rearm_ended
from nanoclaw.sessions.schema import messages_in
from nanoclaw.sessions.store import SessionStore
from nanoclaw.settings import Settings
from tests.importer.conftest import nc
from tests.importer.trees import make_v1

ANCHOR = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)  # the v1 task's next_run
STEP = timedelta(minutes=90)


@pytest.mark.parametrize(
    ("text", "seconds"), [("@every 90m", 5400), ("@every 5400", 5400), ("@EVERY 2h", 7200)]
)
def test_intervals_normalise_to_seconds(text: str, seconds: int) -> None:
    assert validate_cron(text) == f"@every {seconds}s"


@pytest.mark.parametrize("text", ["@every 30s", "@every 0m", "@every 400d", "@every ninety"])
def test_bad_intervals_are_refused_with_the_reason(text: str) -> None:
    with pytest.raises(ValidationError, match="interval"):
        validate_cron(text)


def test_the_grid_is_anchored_and_exact_across_a_dst_change() -> None:
    anchor = datetime(2026, 10, 31, 22, 0, tzinfo=UTC)  # New York falls back on 1 Nov
    at = anchor
    for _ in range(40):  # 60 hours, across the fall-back night
        nxt = next_fire("@every 90m", "America/New_York", at, anchor=anchor)
        assert nxt - at == STEP
        assert previous_fire("@every 90m", "America/New_York", nxt, anchor=anchor) == nxt
        at = nxt
    # Asked from any instant in between, the answer stays on the anchor's grid.
    odd = anchor + timedelta(hours=5, minutes=7)
    assert next_fire("@every 90m", "UTC", odd, anchor=anchor) == anchor + 4 * STEP


def _occurrences(store: SessionStore, settings: Settings) -> tuple[object, list[dict[str, object]]]:
    for inbound in settings.sessions_path.rglob("inbound.db"):
        layout = store.layout(inbound.parents[2].name, inbound.parents[1].name)
        with store.engines.get(layout.inbound_db, readonly=True).connect() as conn:
            found = [
                dict(r._mapping)
                for r in conn.execute(select(messages_in).order_by(messages_in.c.seq))
            ]
        if any("every-90" in str(r["series_id"]) for r in found):
            return layout, [r for r in found if "every-90" in str(r["series_id"])]
    raise AssertionError("the imported interval task is in no session")


def test_an_imported_90_minute_task_fires_every_90_minutes(
    tmp_path: Path, settings: Settings
) -> None:
    tree = make_v1(tmp_path / "v1")
    code, out = nc(
        "import", str(tree.root), "--yes", "--owner", "whatsapp:15551230000@s.whatsapp.net"
    )
    assert code == 0, out
    store = SessionStore(sessions_root=settings.sessions_path)
    layout, (first,) = _occurrences(store, settings)
    assert parse_iso(str(first["process_after"])) == ANCHOR

    fired: list[datetime] = []
    lateness = [
        timedelta(seconds=20),
        timedelta(minutes=3),
        timedelta(seconds=1),
        timedelta(minutes=40),
    ]
    for late in lateness:
        _, rows = _occurrences(store, settings)
        (live,) = [r for r in rows if r["status"] == "pending"]
        due = parse_iso(str(live["process_after"]))
        fired.append(due)
        with store.write(layout) as conn:  # type: ignore[arg-type]
            conn.execute(
                messages_in.update()
                .where(messages_in.c.id == live["id"])
                .values(status="completed")
            )
        # The run ends a little (or, the last time, 40 minutes) after its time: an injected clock.
        rearm_ended(store, layout, now=due + late, default_tz="UTC", grace_s=120)  # type: ignore[arg-type]
    assert fired == [ANCHOR + k * STEP for k in range(4)]
    _, rows = _occurrences(store, settings)
    (nxt,) = [r for r in rows if r["status"] == "pending"]
    # Still on the grid after a late run: anchored to the schedule, not to when it ended.
    assert parse_iso(str(nxt["process_after"])) == ANCHOR + 4 * STEP
    assert {r["recurrence"] for r in rows if r["status"] == "pending"} == {"@every 5400s"}
