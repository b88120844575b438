"""Column types shared by the central and session schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from nanoclaw.contract.timeutil import parse_iso, to_iso


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes stored as fixed-width UTC ISO-8601 text; naive values are rejected."""

    impl = String(32)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return to_iso(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return parse_iso(str(value))
