"""Apply the central DB's Alembic environment programmatically, at start-up."""

from __future__ import annotations

import logging
import threading
from functools import cache
from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from nanoclaw.errors import StorageError

Environment = Literal["central"]  # session DBs migrate through nanoclaw.contract.sessiondb

# Embedded runs stay quiet: one line per applied revision is noise in the host log.
logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)

# Alembic's command API is not re-entrant across threads (it swaps module-level context).
_ALEMBIC_LOCK = threading.Lock()


@cache
def _config(migrations_root: Path, env: Environment) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_root / env))
    return cfg


@cache
def head_revision(migrations_root: Path, env: Environment) -> str:
    head = ScriptDirectory.from_config(_config(migrations_root, env)).get_current_head()
    if head is None:
        raise StorageError(f"no migrations found for {env} under {migrations_root}")
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, migrations_root: Path, env: Environment) -> None:
    """Bring a database to head; a no-op (one read) when it already is there."""
    head = head_revision(migrations_root, env)
    if current_revision(engine) == head:
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
