"""Central-DB rows in plain ``sqlite3`` as detached ORM instances, converted by the ORM's column types."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import configure_mappers, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_dict

from nanoclaw.db.models import CentralBase

M = TypeVar("M", bound=CentralBase)

# The central engine's dialect (``sqlite:///``: pysqlite); its type processors are the ORM's.
_DIALECT = sqlite.dialect()

_Convert = Callable[[Any], Any] | None


class PlainTable(Generic[M]):
    """One model's table read and written through a plain connection.

    Every mapped column is selected, in mapper order, and each value goes through the same
    result (read) or bind (write) processor the ORM applies: ``UTCDateTime`` ISO text to an
    aware datetime and back, SQLite's 0/1 to ``bool`` and back, NULL to None. The instances
    are detached with their identity, as a query's instances are after an
    ``expire_on_commit=False`` session closes.
    """

    def __init__(self, model: type[M]) -> None:
        configure_mappers()  # instances are made without the constructor, which would do it
        mapper = sa_inspect(model)
        columns = list(mapper.columns.items())
        self.model = model
        self._new = mapper.class_manager.new_instance
        self.table: str = model.__tablename__
        self.keys = tuple(key for key, _ in columns)
        names = tuple(column.name for _, column in columns)
        self.select = f"SELECT {', '.join(names)} FROM {self.table}"
        self._insert = (
            f"INSERT INTO {self.table} ({', '.join(names)})"
            f" VALUES ({', '.join('?' for _ in names)})"
        )
        impls = [column.type.dialect_impl(_DIALECT) for _, column in columns]
        self._read: tuple[_Convert, ...] = tuple(t.result_processor(_DIALECT, None) for t in impls)
        self._bind: tuple[_Convert, ...] = tuple(t.bind_processor(_DIALECT) for t in impls)

    def load(self, row: Sequence[Any]) -> M:
        """The detached instance of one row selected by ``select``."""
        return self._detached(
            {
                key: value if convert is None else convert(value)
                for key, convert, value in zip(self.keys, self._read, row, strict=True)
            }
        )

    def one(self, conn: sqlite3.Connection, where: str, params: Sequence[Any]) -> M | None:
        """The first row of ``select`` + ``where`` (a clause with ``?`` parameters), or None."""
        row = conn.execute(f"{self.select} {where}", params).fetchone()
        return None if row is None else self.load(row)

    def all(self, conn: sqlite3.Connection, where: str, params: Sequence[Any]) -> list[M]:
        return [self.load(row) for row in conn.execute(f"{self.select} {where}", params)]

    def insert(self, conn: sqlite3.Connection, values: Mapping[str, Any]) -> M:
        """Insert one row given a value for every column (no defaults are filled in here)."""
        params = [
            values[key] if bind is None else bind(values[key])
            for key, bind in zip(self.keys, self._bind, strict=True)
        ]
        conn.execute(self._insert, params)
        return self._detached({key: values[key] for key in self.keys})

    def _detached(self, values: dict[str, Any]) -> M:
        # As the ORM's loading does: the state's dict filled directly (no attribute events,
        # several times cheaper than the constructor), then given its identity key.
        instance = self._new()
        assert isinstance(instance, self.model)
        instance_dict(instance).update(values)
        make_transient_to_detached(instance)
        return instance


def placeholders(count: int) -> str:
    """``?, ?, …`` for an ``IN (…)`` of ``count`` values."""
    return ", ".join("?" * count)
