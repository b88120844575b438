"""Apply the central DB's Alembic environment programmatically, at start-up.

Alembic (with Mako and Pygments, about 11 MB of the host's memory) is imported only when a
migration is due: a database already at head is recognised by reading its ``alembic_version``
and the revision scripts' ``revision``/``down_revision`` constants with :mod:`ast`. Scripts
that do not declare both as plain constants, or more than one head, defer to Alembic.
"""

from __future__ import annotations

import ast
import logging
import threading
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sqlalchemy import Engine, text

from nanoclaw.errors import StorageError

Environment = Literal["central"]  # session DBs migrate through nanoclaw.contract.sessiondb

if TYPE_CHECKING:
    from alembic.config import Config

# Embedded runs stay quiet: one line per applied revision is noise in the host log.
logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)

# Alembic's command API is not re-entrant across threads (it swaps module-level context).
_ALEMBIC_LOCK = threading.Lock()


@cache
def _config(migrations_root: Path, env: Environment) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_root / env))
    return cfg


@cache
def declared_head(migrations_root: Path, env: Environment) -> str | None:
    """The one head the revision scripts declare, read without Alembic; None when unsure."""
    revisions: dict[str, str | None] = {}
    for script in sorted((migrations_root / env / "versions").glob("*.py")):
        found: dict[str, object] = {}
        for node in ast.parse(script.read_text(), filename=str(script)).body:
            target: ast.expr | None = node.target if isinstance(node, ast.AnnAssign) else None
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
            value = getattr(node, "value", None)
            if isinstance(target, ast.Name) and isinstance(value, ast.Constant):
                found[target.id] = value.value
        revision, down = found.get("revision"), found.get("down_revision", ...)
        if not isinstance(revision, str) or not (down is None or isinstance(down, str)):
            return None
        revisions[revision] = down
    heads = set(revisions) - {down for down in revisions.values() if down is not None}
    return next(iter(heads)) if len(heads) == 1 else None


@cache
def head_revision(migrations_root: Path, env: Environment) -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config(migrations_root, env)).get_current_head()
    if head is None:
        raise StorageError(f"no migrations found for {env} under {migrations_root}")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision stamped in ``alembic_version`` (None for a database never migrated)."""
    with engine.connect() as conn:
        stamped = conn.execute(
            text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'")
        ).first()
        if stamped is None:
            return None
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    return str(rows[0][0]) if len(rows) == 1 else None


def upgrade(engine: Engine, migrations_root: Path, env: Environment) -> None:
    """Bring a database to head; a no-op (one read, no Alembic import) when it is there."""
    current = current_revision(engine)
    if current is not None and current == declared_head(migrations_root, env):
        return
    from alembic import command

    head = head_revision(migrations_root, env)
    if current == head:
        return
    cfg = _config(migrations_root, env)
    with _ALEMBIC_LOCK, engine.connect() as conn:
        # Batch migrations copy tables; foreign keys must be off, and the pragma
        # cannot change inside a transaction, so it goes to the driver connection
        # before SQLAlchemy begins one.
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        finally:
            cfg.attributes.pop("connection", None)
            raw.execute("PRAGMA foreign_keys=ON")
    found = current_revision(engine)
    if found != head:
        raise StorageError(f"migration of {env} stopped at {found}, expected {head}")


def ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
