"""Stop the running host before an import and start it again after, saying so."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

STOP_WAIT_S = 20.0
START_WAIT_S = 30.0
POLL_S = 0.1


def _pid(data_dir: Path) -> int | None:
    """The host's pid from ``data/host.pid``, only if that process really is a NanoClaw host."""
    try:
        pid = int((data_dir / "host.pid").read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, IndexError):
        return None
    words = [w.decode(errors="replace") for w in cmdline]
    if any("nanoclaw" in w for w in words) and "run" in words:
        return pid
    return None


def host_running(data_dir: Path) -> bool:
    return _pid(data_dir) is not None


def stop_host(data_dir: Path) -> bool:
    """SIGTERM the host and wait for it to go; True when one was running."""
    pid = _pid(data_dir)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT_S
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(POLL_S)
    raise TimeoutError(f"the host (pid {pid}) did not stop within {STOP_WAIT_S:g} s")


def start_host(root: Path, data_dir: Path, logs_dir: Path) -> int:
    """Start ``nanoclaw run`` in the background as setup does; returns its pid."""
    logs_dir.mkdir(parents=True, exist_ok=True)
    out = open(logs_dir / "host.out", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [sys.executable, "-m", "nanoclaw.cli", "run", "--log-file", str(logs_dir / "host.log")],
        cwd=root,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    out.close()
    (data_dir / "host.pid").write_text(f"{proc.pid}\n")
    sock = data_dir / "cli.sock"
    deadline = time.monotonic() + START_WAIT_S
    while time.monotonic() < deadline and proc.poll() is None:
        if sock.exists():
            return proc.pid
        time.sleep(POLL_S)
    raise RuntimeError(f"the host did not come up; see {logs_dir / 'host.log'}")
