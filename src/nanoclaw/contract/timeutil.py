"""UTC ISO-8601 timestamps with a fixed width, so string order is time order (invariant 9)."""

from __future__ import annotations

from datetime import UTC, datetime

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc_now() -> datetime:
    return datetime.now(UTC)


def to_iso(moment: datetime) -> str:
    """Format an aware datetime as fixed-width UTC ISO-8601 (``2026-01-05T21:03:00.000000Z``)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: every stored time must be timezone-aware")
    return moment.astimezone(UTC).strftime(_FORMAT)


def now_iso() -> str:
    return to_iso(utc_now())


def parse_iso(text: str) -> datetime:
    """Parse a stored timestamp; a value without a zone is taken as UTC (SQLite's own format)."""
    value = text.strip().replace(" ", "T")
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
