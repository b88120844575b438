"""The fallback supervisor: a small parent that restarts the host whenever it exits.

Used where no service manager is usable (systemd not PID 1, as in containers). It restarts the
host at once, like ``Restart=always``; the host's own start-up breaker is what slows a crash
loop. SIGTERM/SIGINT stop the host and then the supervisor; SIGHUP restarts the host. It does
not survive a reboot, and says so where it is started. Its own pid file carries its argv check.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from .pidfile import PidFile

log = logging.getLogger("nanoclaw.service.supervise")

# A host that dies this soon after its start (before its breaker could run: an import error)
# is restarted after this pause instead of at once, so a broken install cannot spin a core.
MIN_UPTIME_S = 1.0
PAUSE_AFTER_EARLY_EXIT_S = 2.0
CHILD_STOP_TIMEOUT_S = 30.0


class FallbackSupervisor:
    def __init__(self, *, host_argv: list[str], out_file: Path, pid_file: Path) -> None:
        self.host_argv = host_argv
        self.out_file = out_file
        self.pid_file = PidFile(pid_file)
        self._child: subprocess.Popen[bytes] | None = None
        self._stopping = False
        self._restart = False

    def _on_stop(self, signum: int, _frame: FrameType | None) -> None:
        self._stopping = True
        self._forward(signal.SIGTERM)

    def _on_restart(self, signum: int, _frame: FrameType | None) -> None:
        self._restart = True
        self._forward(signal.SIGTERM)

    def _forward(self, sig: signal.Signals) -> None:
        child = self._child
        if child is not None and child.poll() is None:
            child.send_signal(sig)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_restart)
        self.pid_file.write()
        self.out_file.parent.mkdir(parents=True, exist_ok=True)
        try:
            while not self._stopping:
                started = time.monotonic()
                with self.out_file.open("ab") as out:
                    self._child = subprocess.Popen(
                        self.host_argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out
                    )
                log.info("host started (pid %d)", self._child.pid)
                code = self._wait_child()
                if self._stopping:
                    log.info("host stopped (exit %s); supervisor exits", code)
                    break
                if self._restart:
                    self._restart = False
                    log.info("host restarted on request")
                    continue
                log.warning("host exited with %s; restarting it", code)
                if time.monotonic() - started < MIN_UPTIME_S:
                    time.sleep(PAUSE_AFTER_EARLY_EXIT_S)
        finally:
            self.pid_file.remove_if_mine()
        return 0

    def _wait_child(self) -> int:
        assert self._child is not None
        while True:
            try:
                return self._child.wait()
            except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for clarity
                continue


def main(host_argv: list[str], *, out_file: Path, pid_file: Path, log_file: Path) -> int:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        filename=str(log_file),
        level=logging.INFO,
        format="%(asctime)s %(levelname)s supervisor[%(process)d] %(message)s",
    )
    supervisor = FallbackSupervisor(host_argv=host_argv, out_file=out_file, pid_file=pid_file)
    try:
        return supervisor.run()
    except Exception:
        log.exception("supervisor failed")
        return 1
    finally:
        sys.stdout.flush()
