"""Read a source DB only through a private copy (with its ``-wal``): the source is never opened for writing."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def snapshot(db: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to a copy of ``db`` (and its ``-wal``/``-shm``) in a temp dir."""
    with tempfile.TemporaryDirectory(prefix="nanoclaw-import-") as tmp:
        copy = Path(tmp) / db.name
        shutil.copyfile(db, copy)
        for suffix in ("-wal", "-shm"):
            side = db.with_name(db.name + suffix)
            if side.is_file():
                shutil.copyfile(side, copy.with_name(copy.name + suffix))
        # The copy may need its WAL folded in, so it is opened read-write: it is ours.
        conn = sqlite3.connect(copy)
        conn.row_factory = sqlite3.Row
        try:
            yield conn
        finally:
            conn.close()


def columns(conn: sqlite3.Connection, table: str) -> set[str]:
    """The columns a table has (older installs lack the later ones); empty when it is missing."""
    return {str(r[1]) for r in conn.execute(f"PRAGMA table_info({table!r})")}


def rows(conn: sqlite3.Connection, table: str, wanted: list[str]) -> list[dict[str, object]]:
    """Every row of ``table`` with ``wanted`` columns; a missing column reads as None."""
    have = columns(conn, table)
    present = [c for c in wanted if c in have]
    if not present:
        return []
    listed = ", ".join(f'"{c}"' for c in present)
    out: list[dict[str, object]] = []
    for row in conn.execute(f'SELECT {listed} FROM "{table}"'):
        record: dict[str, object] = dict.fromkeys(wanted)
        record.update({c: row[c] for c in present})
        out.append(record)
    return out
