"""The always-on host without a service manager: the supervisor brings a killed host back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from nanoclaw.service.hoststate import read_state
from nanoclaw.service.pidfile import PidFile
from tests.installer.conftest import Install

pytestmark = pytest.mark.timeout(300)


def wait_for_new_host(install: Install, old_pid: int, timeout_s: float = 120) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = read_state(install.data)
        alive = PidFile(install.data / "host.pid").alive()
        if state is not None and state.pid != old_pid and alive == state.pid:
            return state.pid
        time.sleep(0.2)
    raise AssertionError("no new host came up")


def test_a_host_killed_with_sigkill_answers_again_by_itself(install: Install) -> None:
    done = install.nanoclaw("service", "install")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "does NOT survive a reboot" in " ".join(done.stdout.split())
    assert install.nanoclaw("init").returncode == 0
    first = install.nanoclaw("chat", "-m", "hello", "--timeout", "60")
    assert first.returncode == 0 and "heard: hello" in first.stdout, first.stderr
    state = read_state(install.data)
    assert state is not None
    os.kill(state.pid, signal.SIGKILL)
    new_pid = wait_for_new_host(install, state.pid)  # no command: the supervisor restarted it
    again = install.nanoclaw("chat", "-m", "still there?", "--timeout", "60")
    assert again.returncode == 0 and "heard: still there?" in again.stdout, again.stderr
    status = json.loads(install.nanoclaw("service", "status", "--json").stdout)
    assert status["manager"] == "fallback" and status["survives_reboot"] is False
    assert status["host_pid"] == new_pid and status["breaker"]["crashes_last_hour"] == 1
    assert "exited with -9; restarting it" in (install.logs / "supervisor.log").read_text()
    stopped = install.nanoclaw("stop")
    assert stopped.returncode == 0 and "Host stopped" in stopped.stdout
    assert PidFile(install.data / "supervisor.pid").alive() is None
    assert PidFile(install.data / "host.pid").alive() is None


def test_stop_never_signals_a_process_a_stale_pid_file_names(install: Install) -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        install.data.mkdir(parents=True)
        (install.data / "host.pid").write_text(f"{bystander.pid}\n")
        (install.data / "supervisor.pid").write_text(f"{bystander.pid}\n")
        done = install.nanoclaw("stop")
        assert done.returncode == 0 and "not running" in done.stdout
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_restart_replaces_the_host_and_logs_shows_it(install: Install) -> None:
    assert install.nanoclaw("start").returncode == 0
    before = read_state(install.data)
    assert before is not None
    done = install.nanoclaw("restart")
    assert done.returncode == 0, done.stderr
    after = read_state(install.data)
    assert after is not None and after.pid != before.pid
    logs = install.nanoclaw("logs", "-n", "200")
    assert logs.returncode == 0 and logs.stdout.count("host up") >= 2
