"""The session folder layout, the same on the host and (under other roots) inside a sandbox.

A session folder holds one sub-folder per writer, so each can be mounted on its own:
``inbound/`` (host writes, sandbox mounts read-only), ``outbound/`` (runner writes),
``inbox/`` (host writes attachments), ``outbox/`` (runner writes files to send) and
``config/`` (host writes ``runner.json``). DB directories are mounted, never DB files,
because SQLite's rollback journal is created beside the DB.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

INBOUND_DB = "inbound/inbound.db"
OUTBOUND_DB = "outbound/outbound.db"
HEARTBEAT = "outbound/.heartbeat"
RUNNER_CONFIG = "config/runner.json"
SUBDIRS = ("inbound", "outbound", "inbox", "outbox", "config")


@dataclass(frozen=True)
class SessionLayout:
    """Paths inside one session folder (the DB paths, asked for on every pass, made once)."""

    root: Path

    @cached_property
    def inbound_db(self) -> Path:
        return self.root / INBOUND_DB

    @cached_property
    def outbound_db(self) -> Path:
        return self.root / OUTBOUND_DB

    @property
    def heartbeat(self) -> Path:
        return self.root / HEARTBEAT

    @property
    def runner_config(self) -> Path:
        return self.root / RUNNER_CONFIG

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    def dir(self, name: str) -> Path:
        if name not in SUBDIRS:
            raise ValueError(f"unknown session sub-folder {name!r}")
        return self.root / name
