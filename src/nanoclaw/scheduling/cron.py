"""Recurrence rules in a task's IANA time zone: cron and exact intervals, the next fire time, DST.

Rules (DESIGN §4, Recurrence row):
- Expressions are standard 5-field cron (minute hour day month weekday), one of the
  ``@hourly``-style macros, or an exact interval ``@every <n><s|m|h|d>`` (stored as
  ``@every <seconds>s``); anything else is rejected with a ``ValidationError``.
- An interval is anchored to the occurrence's scheduled time: the next run is the first
  ``anchor + k·interval`` after the given instant, so a task every 90 minutes fires every
  90 minutes exactly, in real (UTC) time, whatever the zone's DST does.
- Times are computed on the wall clock of the task's zone and stored as UTC instants.
- Spring forward: a wall-clock time inside the gap fires once, shifted forward by the gap
  (02:30 on a night that skips 02:00–03:00 fires at 03:30).
- Fall back: a wall-clock time that occurs twice fires once (the first time) unless the
  job runs every hour (hour field ``*``), which fires in both hours as real time passes.
- The next run is counted from the scheduled time, never from "now", so nothing drifts.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from nanoclaw.errors import ValidationError

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
INTERVAL_PREFIX = "@every"
_INTERVAL_RE = re.compile(r"^@every\s+(\d{1,9})\s*(s|m|h|d)?$", re.IGNORECASE)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_INTERVAL_S = 60
MAX_INTERVAL_S = 366 * 86400
CRON_FIELDS = 5
MAX_EXPRESSION_CHARS = 128
_MAX_STEPS = 2000


def normalize_cron(expression: str) -> str:
    """The 5-field form of an expression (macros expanded, whitespace collapsed)."""
    text = " ".join(str(expression).split())
    return MACROS.get(text.lower(), text)


def interval_seconds(expression: str) -> int | None:
    """The interval of an ``@every`` expression in seconds, or None for a cron expression."""
    match = _INTERVAL_RE.match(" ".join(str(expression).split()))
    if match is None:
        return None
    return int(match.group(1)) * _UNIT_S[(match.group(2) or "s").lower()]


def interval_expression(seconds: int) -> str:
    return f"{INTERVAL_PREFIX} {seconds}s"


def validate_cron(expression: str, *, field: str = "recurrence") -> str:
    """Return the normalized expression or raise ``ValidationError`` saying what is wrong."""
    if not isinstance(expression, str) or not expression.strip():
        raise ValidationError("a cron expression must be a non-empty string", field=field)
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ValidationError(
            f"cron expression too long ({len(expression)} characters)", field=field
        )
    seconds = interval_seconds(expression)
    if seconds is not None:
        if not MIN_INTERVAL_S <= seconds <= MAX_INTERVAL_S:
            raise ValidationError(
                f"interval {expression.strip()!r} must be between {MIN_INTERVAL_S} s and "
                f"{MAX_INTERVAL_S // 86400} days",
                field=field,
            )
        return interval_expression(seconds)
    if expression.strip().lower().startswith(INTERVAL_PREFIX):
        raise ValidationError(
            f"invalid interval {expression.strip()!r} (and not a cron expression): use "
            "'@every <n>' with a unit s, m, h or d (e.g. '@every 90m')",
            field=field,
        )
    text = normalize_cron(expression)
    if text.startswith("@"):
        raise ValidationError(
            f"unknown cron macro {expression.strip()!r}; use one of {', '.join(MACROS)} "
            "or '@every <n><s|m|h|d>'",
            field=field,
        )
    parts = text.split(" ")
    if len(parts) != CRON_FIELDS:
        raise ValidationError(
            f"invalid cron expression {expression.strip()!r}: expected 5 fields "
            f"(minute hour day-of-month month day-of-week), got {len(parts)}",
            field=field,
        )
    if not croniter.is_valid(text):
        raise ValidationError(
            f"invalid cron expression {expression.strip()!r}: a field is out of range or "
            "malformed (minute 0-59, hour 0-23, day 1-31, month 1-12, weekday 0-6)",
            field=field,
        )
    try:
        croniter(text, datetime(2000, 1, 1)).get_next(datetime)
    except (ValueError, KeyError, TypeError) as exc:  # e.g. "0 0 31 2 *" never fires
        raise ValidationError(
            f"cron expression {expression.strip()!r} never fires: {exc}", field=field
        ) from exc
    return text


def validate_timezone(name: str, *, field: str = "timezone") -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"unknown IANA time zone {name!r}", field=field) from exc
    return name


def _hourly(expression: str) -> bool:
    """Whether the job fires in every hour (then both fall-back hours are real hours)."""
    hours = croniter(expression).expanded[1]
    return hours == ["*"] or len(hours) == 24


def _instants(naive: datetime, zone: ZoneInfo, *, both_folds: bool) -> list[datetime]:
    """The UTC instants at which a wall-clock time happens in ``zone`` (0, 1 or 2 of them)."""
    first = naive.replace(tzinfo=zone, fold=0)
    second = naive.replace(tzinfo=zone, fold=1)
    first_utc = first.astimezone(UTC)
    roundtrip = first_utc.astimezone(zone).replace(tzinfo=None)
    if roundtrip != naive:
        # In the spring-forward gap: fold=0 uses the offset before the gap, which lands
        # exactly "gap" later on the new wall clock.
        return [first_utc]
    if first.utcoffset() != second.utcoffset():
        later = second.astimezone(UTC)
        return [first_utc, later] if both_folds else [first_utc]
    return [first_utc]


def _offsets(zone: ZoneInfo, around: datetime) -> tuple[timedelta, timedelta]:
    samples = [
        (around + timedelta(hours=h)).astimezone(zone).utcoffset() or timedelta(0)
        for h in (-30, 0, 30, 60)
    ]
    return min(samples), max(samples)


def _next_on_grid(anchor: datetime, step_s: int, after: datetime) -> datetime:
    """The first ``anchor + k·step`` (k any integer) strictly after ``after``."""
    elapsed = (after - anchor).total_seconds()
    k = int(elapsed // step_s) + 1
    return anchor + timedelta(seconds=k * step_s)


def next_fire(
    expression: str, timezone: str, after: datetime, *, anchor: datetime | None = None
) -> datetime:
    """The first instant strictly after ``after`` (aware) at which the rule fires, in UTC.

    ``anchor`` is the scheduled time of an occurrence of the series; an interval counts from
    it (without one it counts from ``after``). Cron ignores it.
    """
    if after.tzinfo is None:
        raise ValueError("next_fire needs an aware datetime")
    text = validate_cron(expression)
    step = interval_seconds(text)
    if step is not None:
        base = (anchor or after).astimezone(UTC)
        return _next_on_grid(base, step, after.astimezone(UTC))
    zone = ZoneInfo(timezone)
    after = after.astimezone(UTC)
    both = _hourly(text)
    low, high = _offsets(zone, after)
    # No instant after ``after`` can have a wall-clock time before this.
    start = (after + low).replace(tzinfo=None) - timedelta(minutes=1)
    it = croniter(text, start)
    best: datetime | None = None
    for _ in range(_MAX_STEPS):
        naive: datetime = it.get_next(datetime)
        # The earliest instant this wall-clock time can be; past the best found, stop.
        if best is not None:
            high = max(high, _offsets(zone, best)[1])
            if naive - high > best.replace(tzinfo=None):
                break
        for instant in _instants(naive, zone, both_folds=both):
            if instant > after and (best is None or instant < best):
                best = instant
    if best is None:
        raise ValidationError(f"cron expression {expression!r} has no next run", field="recurrence")
    return best


def previous_fire(
    expression: str, timezone: str, at_or_before: datetime, *, anchor: datetime | None = None
) -> datetime | None:
    """The last instant at or before ``at_or_before`` (aware) at which the rule fires, in UTC."""
    if at_or_before.tzinfo is None:
        raise ValueError("previous_fire needs an aware datetime")
    text = validate_cron(expression)
    step = interval_seconds(text)
    if step is not None:
        if anchor is None:
            return None
        until_utc = at_or_before.astimezone(UTC)
        nxt = _next_on_grid(anchor.astimezone(UTC), step, until_utc)
        return nxt - timedelta(seconds=step)
    zone = ZoneInfo(timezone)
    until = at_or_before.astimezone(UTC)
    both = _hourly(text)
    low, high = _offsets(zone, until)
    # No instant at or before ``until`` can have a wall-clock time after this.
    start = (until + high).replace(tzinfo=None) + timedelta(minutes=1)
    it = croniter(text, start)
    best: datetime | None = None
    for _ in range(_MAX_STEPS):
        try:
            naive: datetime = it.get_prev(datetime)
        except (ValueError, KeyError):
            break
        if best is not None:
            low = min(low, _offsets(zone, best)[0])
            if naive - low < best.replace(tzinfo=None):
                break
        for instant in _instants(naive, zone, both_folds=both):
            if instant <= until and (best is None or instant > best):
                best = instant
    return best


def latest_fire_at_or_before(
    expression: str, timezone: str, *, after: datetime, until: datetime
) -> datetime | None:
    """The last fire time in ``(after, until]``, or None when the cron does not fire there."""
    latest = previous_fire(expression, timezone, until)
    if latest is None or latest <= after:
        return None
    return latest
