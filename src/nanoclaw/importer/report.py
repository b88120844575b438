"""The JSON report every import run writes under ``logs/import/``, and the backup taken before changes."""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

from nanoclaw.importer.model import SourceModel
from nanoclaw.importer.run import Outcome


def backup(*, central_db: Path, groups: Path, data_dir: Path, at: datetime) -> Path:
    """Copy the central DB (SQLite's backup API: consistent under WAL) and ``groups/``."""
    target = data_dir / "backups" / at.strftime("%Y%m%dT%H%M%SZ")
    target.mkdir(parents=True, exist_ok=True)
    if central_db.is_file():
        src = sqlite3.connect(central_db)
        dst = sqlite3.connect(target / central_db.name)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
    if groups.is_dir():
        shutil.copytree(groups, target / "groups", symlinks=True)
    return target


def write_report(
    *,
    logs_dir: Path,
    model: SourceModel,
    outcome: Outcome,
    dry_run: bool,
    started: datetime,
    backup_dir: Path | None,
    host: list[str],
) -> tuple[Path, dict[str, Any]]:
    body: dict[str, Any] = {
        "started": started.isoformat(),
        "source": {"root": str(model.install.root), "kind": model.install.kind.value},
        "dry_run": dry_run,
        "plan": outcome.plan.as_dicts(),
        "problems": [{"step": s, "error": e} for s, e in outcome.problems],
        "flagged_files": outcome.flagged,
        "todo": outcome.todo,
        "backup": str(backup_dir) if backup_dir else None,
        "host": host,
    }
    folder = logs_dir / "import"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{started.strftime('%Y%m%dT%H%M%S%fZ')}{'-dry-run' if dry_run else ''}.json"
    path.write_text(json.dumps(body, indent=2))
    return path, body
