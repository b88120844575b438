"""Installer tests: the real ``nanoclaw.sh`` in a pseudo-terminal, on temporary data and logs dirs.

The checkout's built ``.venv`` is reused (its stamp says the dependencies are current) and agents
run as plain processes, so a run takes seconds. The developer's own ``data/``, ``logs/`` and
``.env`` are never touched: every location is pointed into the test's temporary folder, and the
service is the fallback supervisor, which each test stops (checked through its pid files).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nanoclaw.service.pidfile import PidFile
from tests.conftest import REPO_ROOT

NANOCLAW = str(Path(sys.executable).parent / "nanoclaw")


class Install:
    def __init__(self, tmp_path: Path, short_dir: Path) -> None:
        self.root = tmp_path
        self.home = tmp_path / "home"
        self.home.mkdir()
        self.data = tmp_path / "data"
        self.logs = tmp_path / "logs"
        self.groups = tmp_path / "groups"
        self.env_file = tmp_path / ".env"
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("NANOCLAW_", "ANTHROPIC_", "SLACK_", "TELEGRAM_"))
        }
        self.env.update(
            HOME=str(self.home),
            NANOCLAW_DATA_DIR=str(self.data),
            NANOCLAW_LOGS_DIR=str(self.logs),
            NANOCLAW_GROUPS_DIR=str(self.groups),
            NANOCLAW_ENV_FILE=str(self.env_file),
            NANOCLAW_CLI_SOCKET_PATH=str(short_dir / "cli.sock"),
            NANOCLAW_RUNTIME="process",
            NANOCLAW_ALLOW_PROCESS_RUNTIME="1",
            NANOCLAW_SERVICE_MANAGER="fallback",
            COLUMNS="200",
            TZ="Europe/Berlin",
        )

    def nanoclaw(self, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [NANOCLAW, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            cwd=REPO_ROOT,
        )

    def script(self, *args: str, timeout_s: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(REPO_ROOT / "nanoclaw.sh"), *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            cwd=REPO_ROOT,
        )

    def stop(self) -> None:
        """Stop what this install started; anything left is killed through its checked pid file."""
        self.nanoclaw("stop", timeout_s=60)
        for name in ("supervisor.pid", "host.pid"):
            pid = PidFile(self.data / name).alive()
            if pid is not None:
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def install(tmp_path: Path, short_dir: Path) -> Iterator[Install]:
    instance = Install(tmp_path, short_dir)
    try:
        yield instance
    finally:
        instance.stop()
