"""Pid files that are trusted only when the process's command line still names them.

A pid file can outlive its process (a crash, a reboot) and the pid can be reused by anything.
Every process we signal was started with ``--pid-file <this path>`` in its argv, so before a
signal is sent the process's command line (``/proc/<pid>/cmdline``, or ``ps`` where there is no
``/proc``) must contain that path; otherwise the pid file is stale and is removed, and nothing
is signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path


def command_line(pid: int) -> list[str] | None:
    """The argv of ``pid``, or None when no such process exists (or it cannot be read)."""
    proc = Path(f"/proc/{pid}/cmdline")
    if Path("/proc/self/cmdline").exists():
        try:
            raw = proc.read_bytes()
        except OSError:
            return None
        return [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    try:  # macOS and other systems without /proc
        out = subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    line = out.stdout.strip()
    return line.split() if out.returncode == 0 and line else None


class PidFile:
    """``path`` holds the pid of a process whose argv contains ``str(path)``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, pid: int | None = None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(f"{pid or os.getpid()}\n")
        tmp.replace(self.path)

    def recorded(self) -> int | None:
        try:
            return int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None

    def alive(self) -> int | None:
        """The recorded pid if that process is still ours (its argv names this file), else None."""
        pid = self.recorded()
        if pid is None or pid <= 0:
            return None
        argv = command_line(pid)
        if argv is None or str(self.path) not in argv:
            return None
        return pid

    def signal(self, sig: signal.Signals) -> int | None:
        """Send ``sig`` to the verified process; a stale file is removed and nothing is signalled."""
        pid = self.alive()
        if pid is None:
            self.clear_if_stale()
            return None
        os.kill(pid, sig)
        return pid

    def clear_if_stale(self) -> None:
        if self.path.exists() and self.alive() is None:
            with contextlib.suppress(OSError):
                self.path.unlink()

    def remove_if_mine(self, pid: int | None = None) -> None:
        if self.recorded() == (pid or os.getpid()):
            with contextlib.suppress(OSError):
                self.path.unlink()
