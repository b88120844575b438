"""Alembic environment for the outbound database; uses the caller's connection when given one."""

from __future__ import annotations

from logging.config import fileConfig
from pathlib import Path

from alembic import context

from nanoclaw.db.sqlite import make_engine
from nanoclaw.sessions.schema import outbound_metadata

target_metadata = outbound_metadata

config = context.config


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    # Stand-alone use from the alembic command line: guard fileConfig so embedded runs keep logging.
    if config.config_file_name is not None:
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    url = config.get_main_option("sqlalchemy.url") or ""
    engine = make_engine(Path(url.removeprefix("sqlite:///")), wal=False)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported")
run_migrations()
