"""Pid files are trusted only while the process's argv still names them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from nanoclaw.service.pidfile import PidFile, command_line


def test_a_stale_pid_file_never_signals_an_unrelated_process(tmp_path: Path) -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        pid_file = PidFile(tmp_path / "host.pid")
        pid_file.write(bystander.pid)  # e.g. the host died and its pid was reused
        assert pid_file.alive() is None
        assert pid_file.signal(signal.SIGTERM) is None
        assert bystander.poll() is None  # untouched
        assert not pid_file.path.exists()  # the stale file is gone
    finally:
        bystander.kill()
        bystander.wait()


def test_the_process_that_names_the_file_is_signalled(tmp_path: Path) -> None:
    path = tmp_path / "host.pid"
    ours = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "--pid-file", str(path)]
    )
    try:
        pid_file = PidFile(path)
        pid_file.write(ours.pid)
        # Until the child has exec'd, /proc shows the parent's command line: wait for that state.
        deadline = time.monotonic() + 10
        while str(path) not in " ".join(command_line(ours.pid) or []):
            assert time.monotonic() < deadline, "the child never showed its command line"
            time.sleep(0.01)
        assert pid_file.alive() == ours.pid
        assert pid_file.signal(signal.SIGTERM) == ours.pid
        assert ours.wait(10) == -signal.SIGTERM
    finally:
        if ours.poll() is None:
            ours.kill()
            ours.wait()
