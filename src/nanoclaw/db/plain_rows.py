"""ORM rows built from plain ``sqlite3`` rows, converted as the ORM's column types convert them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import Boolean, inspect
from sqlalchemy.orm import make_transient_to_detached

from nanoclaw.contract.timeutil import parse_iso
from nanoclaw.db.models import CentralBase
from nanoclaw.db.types import UTCDateTime

Row = TypeVar("Row", bound=CentralBase)
_Convert = Callable[[Any], Any] | None


def _read_iso(value: Any) -> Any:
    return None if value is None else parse_iso(str(value))


def _read_bool(value: Any) -> Any:
    return None if value is None else bool(value)


@cache
def _shape(model: type[CentralBase]) -> tuple[str, tuple[tuple[str, _Convert], ...]]:
    """``SELECT <every column> FROM <table>``, and each column's attribute key and reader."""
    mapper = inspect(model)
    fields: list[tuple[str, _Convert]] = []
    names: list[str] = []
    for column in mapper.local_table.columns:
        names.append(f'"{column.name}"')
        convert: _Convert = None
        if isinstance(column.type, UTCDateTime):
            convert = _read_iso
        elif isinstance(column.type, Boolean):
            convert = _read_bool
        fields.append((mapper.get_property_by_column(column).key, convert))
    return f"SELECT {', '.join(names)} FROM {model.__tablename__}", tuple(fields)


def select_all(model: type[CentralBase]) -> str:
    """``SELECT`` of every column of the model's table, in the order ``detached`` reads them."""
    return _shape(model)[0]


def detached(model: type[Row], row: Sequence[Any]) -> Row:
    """A detached, fully loaded instance, as a query in a committed session would have left it."""
    values: dict[str, Any] = {}
    for (key, convert), value in zip(_shape(model)[1], row, strict=True):
        values[key] = value if convert is None else convert(value)
    instance = model(**values)
    make_transient_to_detached(instance)
    return instance
