"""Cron in a task's zone (DST rules, no drift), recurrence re-arm, catch-up and task controls."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from nanoclaw.contract.layout import SessionLayout
from nanoclaw.contract.timeutil import parse_iso, to_iso
from nanoclaw.errors import ValidationError
from nanoclaw.scheduling.cron import next_fire, previous_fire, validate_cron
from nanoclaw.scheduling.recurrence import catch_up_overdue, rearm_ended, validate_catch_up
from nanoclaw.scheduling.tasks import control_task, list_tasks
from nanoclaw.sessions.schema import messages_in
from nanoclaw.sessions.store import InboundMessage, SessionStore

NY = "America/New_York"


def local(moment: datetime, tz: str = NY) -> str:
    return moment.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %Z")


@pytest.mark.parametrize(
    "expr", ["61 * * * *", "* * *", "* * * * * *", "@every5m", "0 0 31 2 *", "", "a b c d e"]
)
def test_invalid_cron_is_rejected_with_a_clear_error(expr: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_cron(expr)
    assert "cron" in str(info.value)


def test_macros_and_whitespace_normalize() -> None:
    assert validate_cron("@daily") == "0 0 * * *"
    assert validate_cron("  0   9 * *   1-5 ") == "0 9 * * 1-5"


def test_cron_runs_in_the_tasks_zone() -> None:
    after = datetime(2026, 5, 31, 12, tzinfo=UTC)
    assert next_fire("0 9 * * *", "Asia/Tokyo", after) == datetime(2026, 6, 1, 0, tzinfo=UTC)
    assert next_fire("0 9 * * *", NY, after) == datetime(2026, 5, 31, 13, tzinfo=UTC)


def test_next_run_counts_from_the_scheduled_time_not_now() -> None:
    scheduled = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    # However late the run finished, the series stays on its grid.
    assert next_fire("0 9 * * *", "UTC", scheduled) == scheduled + timedelta(days=1)
    assert next_fire("*/15 * * * *", "UTC", scheduled) == scheduled + timedelta(minutes=15)


def test_fall_back_repeat_fires_once_for_a_daily_job() -> None:
    # 2026-11-01: New York's 01:00–02:00 happens twice.
    first = next_fire("30 1 * * *", NY, datetime(2026, 10, 31, 12, tzinfo=UTC))
    second = next_fire("30 1 * * *", NY, first)
    assert local(first) == "2026-11-01 01:30 EDT"
    assert local(second) == "2026-11-02 01:30 EST"


def test_fall_back_hour_is_real_time_for_an_hourly_job() -> None:
    times = [datetime(2026, 11, 1, 4, 30, tzinfo=UTC)]
    for _ in range(3):
        times.append(next_fire("0 * * * *", NY, times[-1]))
    assert [local(t) for t in times[1:]] == [
        "2026-11-01 01:00 EDT",
        "2026-11-01 01:00 EST",
        "2026-11-01 02:00 EST",
    ]
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(times[1:]))


def test_spring_forward_gap_fires_once_shifted_by_the_gap() -> None:
    # 2026-03-08: New York skips 02:00–03:00.
    first = next_fire("30 2 * * *", NY, datetime(2026, 3, 7, 12, tzinfo=UTC))
    assert local(first) == "2026-03-08 03:30 EDT"
    assert local(next_fire("30 2 * * *", NY, first)) == "2026-03-09 02:30 EDT"
    # Two wall-clock times landing on the same instant fire once.
    both = next_fire("30 2,3 * * *", NY, datetime(2026, 3, 8, 5, tzinfo=UTC))
    assert local(next_fire("30 2,3 * * *", NY, both)) == "2026-03-09 02:30 EDT"


def test_previous_fire_is_the_inverse_of_next_fire() -> None:
    cursor = datetime(2026, 10, 31, tzinfo=UTC)
    for _ in range(60):
        nxt = next_fire("*/20 * * * *", NY, cursor)
        assert previous_fire("*/20 * * * *", NY, nxt) == nxt
        before = previous_fire("*/20 * * * *", NY, nxt - timedelta(microseconds=1))
        assert before is not None and before <= cursor
        cursor = nxt


def test_catch_up_policy_is_validated() -> None:
    assert validate_catch_up(None) == "once"
    assert validate_catch_up("SKIP") == "skip"
    with pytest.raises(ValidationError):
        validate_catch_up("all")


# -- series in a real session DB ------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> SessionStore:
    return SessionStore(sessions_root=tmp_path / "sessions")


@pytest.fixture
def layout(store: SessionStore) -> SessionLayout:
    return store.ensure("andy", "sess-1")


def task(id_: str, at: datetime, cron: str | None = "0 * * * *", **kw: object) -> InboundMessage:
    return InboundMessage(
        id=id_,
        kind="task",
        content={"prompt": f"do {id_}"},
        channel_type="cli",
        platform_id="local",
        process_after=to_iso(at),
        recurrence=cron,
        recurrence_tz="UTC",
        **kw,  # type: ignore[arg-type]
    )


def rows(store: SessionStore, layout: SessionLayout) -> list[dict[str, object]]:
    with store.engines.get(layout.inbound_db, readonly=True).connect() as conn:
        found = conn.execute(select(messages_in).order_by(messages_in.c.seq))
        return [dict(r._mapping) for r in found]


def finish(store: SessionStore, layout: SessionLayout, id_: str, status: str = "completed") -> None:
    with store.write(layout) as conn:
        conn.execute(messages_in.update().where(messages_in.c.id == id_).values(status=status))


def live(store: SessionStore, layout: SessionLayout) -> list[dict[str, object]]:
    return [r for r in rows(store, layout) if r["status"] in ("pending", "paused")]


T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def test_rearm_inserts_exactly_one_next_occurrence_even_when_repeated(
    store: SessionStore, layout: SessionLayout
) -> None:
    store.insert_messages(layout, [task("brief", T0)])
    finish(store, layout, "brief")
    now = T0 + timedelta(seconds=30)
    for _ in range(3):  # the sweep, a turn-done hook and a restarted host all try
        rearm_ended(store, layout, now=now, default_tz="UTC", grace_s=120)
    (nxt,) = live(store, layout)
    assert nxt["series_id"] == "brief" and nxt["recurrence"] == "0 * * * *"
    assert parse_iso(str(nxt["process_after"])) == T0 + timedelta(hours=1)
    assert nxt["recurrence_tz"] == "UTC" and nxt["tries"] == 0
    assert [r["recurrence"] for r in rows(store, layout) if r["id"] == "brief"] == [None]


def test_a_turn_with_nothing_ended_to_rearm_takes_no_write_lock(
    store: SessionStore, layout: SessionLayout
) -> None:
    store.insert_messages(layout, [task("brief", T0), task("once", T0, cron=None)])
    finish(store, layout, "once")  # ended, but not recurring: nothing to re-arm
    other = sqlite3.connect(layout.inbound_db, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
        assert rearm_ended(store, layout, now=T0, default_tz="UTC", grace_s=120) == []
    finally:
        other.execute("ROLLBACK")
        other.close()
    finish(store, layout, "brief")
    (rearmed,) = rearm_ended(store, layout, now=T0, default_tz="UTC", grace_s=120)
    assert rearmed.series_id == "brief" and rearmed.new_id is not None


def test_a_failed_run_still_rearms_its_series(store: SessionStore, layout: SessionLayout) -> None:
    store.insert_messages(layout, [task("brief", T0)])
    finish(store, layout, "brief", "failed")
    rearm_ended(store, layout, now=T0 + timedelta(seconds=5), default_tz="UTC", grace_s=120)
    assert len(live(store, layout)) == 1


def test_a_run_late_after_downtime_is_the_one_catch_up(
    store: SessionStore, layout: SessionLayout
) -> None:
    store.insert_messages(layout, [task("brief", T0)])
    finish(store, layout, "brief")  # it ran 3 h 10 min late (host was down)
    now = T0 + timedelta(hours=3, minutes=10)
    rearm_ended(store, layout, now=now, default_tz="UTC", grace_s=120)
    (nxt,) = live(store, layout)
    assert parse_iso(str(nxt["process_after"])) == T0 + timedelta(hours=4)  # no second run now


def test_skip_policy_moves_an_overdue_occurrence_without_running_it(
    store: SessionStore, layout: SessionLayout
) -> None:
    store.insert_messages(layout, [task("skipper", T0, catch_up="skip"), task("onceler", T0)])
    now = T0 + timedelta(hours=2, minutes=10)
    moved = catch_up_overdue(store, layout, now=now, default_tz="UTC", grace_s=120, claimed=set())
    assert set(moved) == {"skipper"}
    by_id = {r["id"]: r for r in live(store, layout)}
    assert parse_iso(str(by_id["skipper"]["process_after"])) == T0 + timedelta(hours=3)
    assert parse_iso(str(by_id["onceler"]["process_after"])) == T0  # fires once, now


def test_task_controls_act_on_the_whole_series(store: SessionStore, layout: SessionLayout) -> None:
    store.insert_messages(layout, [task("brief", T0)])
    finish(store, layout, "brief")
    rearm_ended(store, layout, now=T0 + timedelta(seconds=1), default_tz="UTC", grace_s=120)
    assert control_task(store, layout, "brief", "pause") == 1  # matched by series id
    assert [t.status for t in list_tasks(store, layout)] == ["paused"]
    assert control_task(store, layout, "brief", "resume") == 1
    assert control_task(store, layout, "brief", "cancel") == 1
    assert list_tasks(store, layout) == []
    finish_states = {r["status"] for r in rows(store, layout)}
    assert finish_states == {"completed"}
    rearm_ended(store, layout, now=T0 + timedelta(hours=2), default_tz="UTC", grace_s=120)
    assert live(store, layout) == []  # a cancelled series never comes back
    assert control_task(store, layout, "nope", "pause") == 0
