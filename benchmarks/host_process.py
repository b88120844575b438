"""A real host (``nanoclaw run``) in its own process on a scratch data dir, for the benchmarks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType


class HostProcess:
    """``with HostProcess(chats=4) as host:`` — chats ``c0``…``c<n-1>`` wired to agent Andy."""

    def __init__(self, *, chats: int, env: dict[str, str] | None = None) -> None:
        self.chats = chats
        self.scratch = Path(tempfile.mkdtemp(prefix="nc-bench-"))
        self.data_dir = self.scratch / "data"
        self.socket_path = self.scratch / "cli.sock"
        base = {
            k: v for k, v in os.environ.items() if not k.startswith(("NANOCLAW_", "ANTHROPIC_"))
        }
        base.update(
            NANOCLAW_ENV_FILE="",
            NANOCLAW_DATA_DIR=str(self.data_dir),
            NANOCLAW_GROUPS_DIR=str(self.scratch / "groups"),
            NANOCLAW_CLI_SOCKET_PATH=str(self.socket_path),
            NANOCLAW_RUNTIME="process",
            NANOCLAW_ALLOW_PROCESS_RUNTIME="1",
            NANOCLAW_MAX_CONCURRENT_RUNNERS=str(max(5, chats)),
        )
        base.update(env or {})
        self.env = base
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cli(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "nanoclaw.cli", *args],
            env=self.env,
            check=True,
            capture_output=True,
        )

    def __enter__(self) -> HostProcess:
        self.cli("init")
        for c in range(self.chats):
            self.cli("wire", f"c{c}", "Andy")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nanoclaw.cli", "run", "--log-level", "WARNING"], env=self.env
        )
        deadline = time.monotonic() + 60
        while not self.socket_path.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("host did not start")
            time.sleep(0.05)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
        shutil.rmtree(self.scratch, ignore_errors=True)
