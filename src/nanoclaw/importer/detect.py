"""Find a NanoClaw install to import and tell v1 (``store/messages.db``) from TypeScript v2 (``data/v2.db``)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from nanoclaw.errors import ValidationError
from nanoclaw.importer.model import SourceInstall, SourceKind

V1_DB = Path("store/messages.db")
V2_DB = Path("data/v2.db")
V1_TABLES = frozenset({"registered_groups", "scheduled_tasks", "messages", "chats"})
V2_TABLES = frozenset({"agent_groups", "messaging_groups", "messaging_group_agents"})


def candidate_roots(project_root: Path, home: Path) -> list[Path]:
    """Where installs usually are (v1-install.md §1), in the order they are tried."""
    env = os.environ.get("NANOCLAW_V1_PATH")
    found: list[Path] = [Path(env).expanduser()] if env else []
    parent = project_root.resolve().parent
    found += [parent / "nanoclaw", parent / "nanoclaw-v1", parent / "nanoclaw-v2"]
    found += [home / "nanoclaw", home / "src" / "nanoclaw", home / "code" / "nanoclaw"]
    unique: list[Path] = []
    for path in found:
        if path.resolve() != project_root.resolve() and path not in unique:
            unique.append(path)
    return unique


def _tables(db: Path) -> set[str]:
    uri = f"{db.resolve().as_uri()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise ValidationError(f"{db} is not an SQLite database ({exc})", field="path") from exc
    finally:
        conn.close()


def identify(root: Path) -> SourceInstall | None:
    """The install at ``root``, or None when there is none; a foreign DB is refused clearly."""
    root = root.expanduser()
    for relative, kind, needed in (
        (V1_DB, SourceKind.V1, V1_TABLES),
        (V2_DB, SourceKind.V2, V2_TABLES),
    ):
        db = root / relative
        if not db.is_file():
            continue
        tables = _tables(db)
        if "registered_groups" in needed and "registered_groups" not in tables:
            raise ValidationError(
                f"{db} is not a NanoClaw v1 database (no registered_groups table; found: "
                f"{', '.join(sorted(tables)) or 'no tables'})",
                field="path",
            )
        if kind is SourceKind.V2 and not tables >= V2_TABLES:
            raise ValidationError(
                f"{db} is not a NanoClaw v2 database (missing "
                f"{', '.join(sorted(V2_TABLES - tables))})",
                field="path",
            )
        return SourceInstall(root=root.resolve(), kind=kind, db_path=db.resolve())
    return None


def detect(path: Path | None, *, project_root: Path, home: Path) -> SourceInstall | None:
    """An explicit path must hold an install; without one, the usual places are searched."""
    if path is not None:
        found = identify(path)
        if found is None:
            raise ValidationError(
                f"no NanoClaw install at {path}: expected {V1_DB} (v1) or {V2_DB} (TypeScript v2)",
                field="path",
            )
        return found
    return first_install(candidate_roots(project_root, home))


def first_install(roots: Iterable[Path]) -> SourceInstall | None:
    for root in roots:
        try:
            found = identify(root)
        except (ValidationError, OSError, sqlite3.Error):
            continue
        if found is not None:
            return found
    return None
