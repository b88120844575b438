"""Read a source DB only through a private copy (with its ``-wal``): the source is never opened for writing."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from nanoclaw.contract.timeutil import parse_iso, to_iso
from nanoclaw.importer.envmap import parse_env
from nanoclaw.importer.model import SourceInstall, SourceModel


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


def start_model(install: SourceInstall) -> SourceModel:
    """A model for ``install`` with its ``.env`` read (``TZ`` is the install's time zone)."""
    model = SourceModel(install=install)
    env_file = install.root / ".env"
    if env_file.is_file():
        try:
            model.env = parse_env(env_file.read_text(errors="replace"))
        except OSError as exc:
            model.problems.append(("env", f"cannot read {env_file}: {exc}"))
    model.timezone = model.env.get("TZ") or None
    return model


def read_step(model: SourceModel, name: str, fn: Callable[[], None]) -> None:
    """One step's failure is recorded and the others still run (the import never aborts)."""
    try:
        fn()
    except (sqlite3.Error, ValueError, TypeError, KeyError, OSError) as exc:
        model.problems.append((name, f"{type(exc).__name__}: {exc}"))


def utc_or_none(raw: object) -> str | None:
    """A source timestamp as our UTC ISO form, or None when it is missing or not a time."""
    if raw is None or not str(raw).strip():
        return None
    try:
        return to_iso(parse_iso(str(raw)))
    except ValueError:
        return None
