"""Import tests: the CLI pointed at fresh data, groups, logs, .env and mount allowlist."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from nanoclaw.cli.app import _State, app
from nanoclaw.settings import Settings

runner = CliRunner()


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / "target.env"
    path.write_text("NANOCLAW_RUNTIME=auto\n")
    path.chmod(0o600)
    return path


@pytest.fixture(autouse=True)
def cli_env(
    settings: Settings, env_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NANOCLAW_ENV_FILE", str(env_file))
    monkeypatch.setenv("NANOCLAW_DATA_DIR", str(settings.data_path))
    monkeypatch.setenv("NANOCLAW_GROUPS_DIR", str(settings.groups_path))
    monkeypatch.setenv("NANOCLAW_LOGS_DIR", str(settings.logs_path))
    monkeypatch.setenv("NANOCLAW_CLI_SOCKET_PATH", str(settings.cli_socket))
    monkeypatch.setenv("NANOCLAW_TIMEZONE", "UTC")
    monkeypatch.setenv("NANOCLAW_MOUNT_ALLOWLIST_PATH", str(tmp_path / "no-allowlist.json"))
    monkeypatch.setenv("NANOCLAW_V1_PATH", str(tmp_path / "nowhere"))
    # The CLI caches its settings per process: each test has its own data dir.
    monkeypatch.setattr(_State, "settings", None)


def nc(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), input=stdin)
    return result.exit_code, result.output


def nc_json(*args: str) -> Any:
    code, out = nc(*args, "--json")
    assert code == 0, out
    return json.loads(out)


def tree_hash(root: Path) -> str:
    """Every file's path, mode and bytes under ``root``: the source must not change."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(str(path.lstat().st_mode).encode())
        if path.is_file() and not path.is_symlink():
            digest.update(path.read_bytes())
    return digest.hexdigest()
