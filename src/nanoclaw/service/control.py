"""Install, start, stop and restart the host under whichever manager this install uses.

``data/service.json`` records what ``service install`` set up, so ``start``/``stop``/``restart``
use the same manager later. Without a record (or with the fallback) the host runs under the
fallback supervisor. Every stop goes through a pid file checked against the process's argv.
A user's start or restart leaves the breaker's skip marker first, so it never waits.
"""

from __future__ import annotations

import functools
import getpass
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nanoclaw.errors import ConfigError, NanoclawError
from nanoclaw.service.probe import host_running
from nanoclaw.settings import Settings

from .breaker import StartupBreaker
from .hoststate import HOST_PID_FILE, HostState, read_state
from .manager import ManagerKind, Probe, choose_manager
from .pidfile import PidFile
from .units import (
    ServicePaths,
    carried_env,
    launchd_label,
    launchd_plist,
    service_name,
    systemd_unit,
)

SERVICE_FILE = "service.json"
SUPERVISOR_PID_FILE = "supervisor.pid"
HOST_UP_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 40.0
POLL_S = 0.1
SUPERVISOR_START_S = 15.0


class ServiceError(NanoclawError):
    """A service manager command failed; ``command`` is what was run."""

    def __init__(self, message: str, *, command: list[str] | None = None) -> None:
        super().__init__(message)
        self.command = command


@dataclass(frozen=True)
class Installed:
    kind: ManagerKind
    unit_path: str | None  # the unit or plist written, None for the fallback
    reason: str


def _gone(pid_file: PidFile) -> bool:
    return pid_file.alive() is None


def nanoclaw_bin() -> Path:
    candidate = Path(sys.executable).parent / "nanoclaw"
    return candidate if candidate.exists() else Path(sys.executable)


def host_argv(settings: Settings) -> list[str]:
    paths = ServicePaths.of(settings, nanoclaw_bin())
    argv = paths.host_argv()
    if paths.nanoclaw_bin == Path(sys.executable):
        argv = [sys.executable, "-m", "nanoclaw.cli", *argv[1:]]
    return argv


def _run(command: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise ServiceError(
            f"`{' '.join(command)}` failed: {(done.stderr or done.stdout).strip()}", command=command
        )
    return done


class ServiceControl:
    def __init__(self, *, settings: Settings, probe: Probe | None = None) -> None:
        self.settings = settings
        self.probe = probe or Probe()
        self.data = settings.data_path
        self.host_pid = PidFile(self.data / HOST_PID_FILE)
        self.supervisor_pid = PidFile(self.data / SUPERVISOR_PID_FILE)
        self.breaker = StartupBreaker(data_path=self.data)

    # -- what is installed ----------------------------------------------------------------------
    def installed(self) -> Installed | None:
        try:
            data = json.loads((self.data / SERVICE_FILE).read_text())
            return Installed(ManagerKind(data["kind"]), data.get("unit_path"), data["reason"])
        except (OSError, ValueError, KeyError):
            return None

    def _record(self, installed: Installed | None) -> None:
        path = self.data / SERVICE_FILE
        if installed is None:
            path.unlink(missing_ok=True)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(
                {
                    "kind": installed.kind.value,
                    "unit_path": installed.unit_path,
                    "reason": installed.reason,
                }
            )
        )

    def kind(self) -> ManagerKind:
        installed = self.installed()
        return installed.kind if installed else ManagerKind.FALLBACK

    def _systemctl(self, kind: ManagerKind, *args: str) -> list[str]:
        return ["systemctl", *(["--user"] if kind is ManagerKind.SYSTEMD_USER else []), *args]

    # -- install / uninstall --------------------------------------------------------------------
    def unit_text(self, kind: ManagerKind) -> str | bytes:
        paths = ServicePaths.of(self.settings, nanoclaw_bin())
        env = carried_env()
        if kind is ManagerKind.LAUNCHD:
            return launchd_plist(paths, label=launchd_label(self.settings), env=env)
        user = getpass.getuser() if kind is ManagerKind.SYSTEMD_SYSTEM else None
        return systemd_unit(paths, install_id=self.settings.install_id, system_user=user, env=env)

    def unit_path(self, kind: ManagerKind) -> Path | None:
        name = service_name(self.settings)
        if kind is ManagerKind.SYSTEMD_USER:
            base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
            return base / "systemd" / "user" / f"{name}.service"
        if kind is ManagerKind.SYSTEMD_SYSTEM:
            return Path("/etc/systemd/system") / f"{name}.service"
        if kind is ManagerKind.LAUNCHD:
            return (
                Path.home() / "Library" / "LaunchAgents" / f"{launchd_label(self.settings)}.plist"
            )
        return None

    def install(self) -> Installed:
        kind, reason = choose_manager(self.settings.service_manager, self.probe)
        path = self.unit_path(kind)
        if path is not None:
            text = self.unit_text(kind)
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(text, bytes):
                path.write_bytes(text)
            else:
                path.write_text(text)
        installed = Installed(kind, str(path) if path else None, reason)
        if kind in (ManagerKind.SYSTEMD_USER, ManagerKind.SYSTEMD_SYSTEM):
            self.stop_fallback()  # one manager at a time: never two hosts on one data dir
            _run(self._systemctl(kind, "daemon-reload"))
            _run(self._systemctl(kind, "enable", f"{service_name(self.settings)}.service"))
            if kind is ManagerKind.SYSTEMD_USER:
                # Without lingering the user's services stop at logout and wait for a login.
                _run(["loginctl", "enable-linger", getpass.getuser()], check=False)
        elif kind is ManagerKind.LAUNCHD:
            self.stop_fallback()
        self._record(installed)
        return installed

    def uninstall(self) -> Installed | None:
        installed = self.installed()
        self.stop()
        if installed is not None and installed.unit_path:
            kind = installed.kind
            if kind in (ManagerKind.SYSTEMD_USER, ManagerKind.SYSTEMD_SYSTEM):
                _run(
                    self._systemctl(kind, "disable", f"{service_name(self.settings)}.service"),
                    check=False,
                )
            Path(installed.unit_path).unlink(missing_ok=True)
            if kind in (ManagerKind.SYSTEMD_USER, ManagerKind.SYSTEMD_SYSTEM):
                _run(self._systemctl(kind, "daemon-reload"), check=False)
        self._record(None)
        return installed

    # -- start / stop / restart -----------------------------------------------------------------
    def start(self, *, timeout_s: float = HOST_UP_TIMEOUT_S) -> HostState:
        self.breaker.request_skip()  # a user's start never waits out the breaker
        kind = self.kind()
        if kind is ManagerKind.FALLBACK:
            if self.supervisor_pid.alive() is None:
                self._spawn_supervisor()
        elif kind is ManagerKind.LAUNCHD:
            plist = self.unit_path(kind)
            _run(["launchctl", "load", "-w", str(plist)], check=False)
        else:
            _run(self._systemctl(kind, "start", f"{service_name(self.settings)}.service"))
        return self.wait_for_host(previous_pid=None, timeout_s=timeout_s)

    def stop(self, *, timeout_s: float = STOP_TIMEOUT_S) -> bool:
        """Stop the host; True if something was running."""
        kind = self.kind()
        was_running = self.host_pid.alive() is not None or self.supervisor_pid.alive() is not None
        if kind is ManagerKind.LAUNCHD:
            _run(["launchctl", "unload", str(self.unit_path(kind))], check=False)
        elif kind in (ManagerKind.SYSTEMD_USER, ManagerKind.SYSTEMD_SYSTEM):
            _run(
                self._systemctl(kind, "stop", f"{service_name(self.settings)}.service"), check=False
            )
        self.stop_fallback(timeout_s=timeout_s)
        return was_running

    def stop_fallback(self, *, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the fallback supervisor, and a host no supervisor owns (e.g. a bare ``run``)."""
        for pid_file in (self.supervisor_pid, self.host_pid):
            if pid_file.signal(signal.SIGTERM) is not None:
                self._wait(
                    functools.partial(_gone, pid_file), timeout_s, f"{pid_file.path} to exit"
                )

    def restart(self, *, timeout_s: float = HOST_UP_TIMEOUT_S) -> HostState:
        self.breaker.request_skip()
        previous = read_state(self.data)
        previous_pid = previous.pid if previous else None
        kind = self.kind()
        if kind is ManagerKind.FALLBACK:
            if self.supervisor_pid.signal(signal.SIGHUP) is None:
                self.host_pid.signal(signal.SIGTERM)  # a host without supervisor: replace it
                self._wait(functools.partial(_gone, self.host_pid), STOP_TIMEOUT_S, "the host")
                self._spawn_supervisor()
        elif kind is ManagerKind.LAUNCHD:
            _run(
                [
                    "launchctl",
                    "kickstart",
                    "-k",
                    f"gui/{os.getuid()}/{launchd_label(self.settings)}",
                ]
            )
        else:
            _run(self._systemctl(kind, "restart", f"{service_name(self.settings)}.service"))
        return self.wait_for_host(previous_pid=previous_pid, timeout_s=timeout_s)

    def _spawn_supervisor(self) -> None:
        logs = self.settings.logs_path
        logs.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable,
            "-m",
            "nanoclaw.cli",
            "service",
            "supervise",
            "--pid-file",
            str(self.supervisor_pid.path),
        ]
        with (logs / "supervisor.out").open("ab") as out:
            subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
                close_fds=True,
                cwd=str(self.settings.root),
            )

    def wait_for_host(self, *, previous_pid: int | None, timeout_s: float) -> HostState:
        """Until a host other than ``previous_pid`` has written its state and answers."""
        started = time.monotonic()
        supervised = self.kind() is ManagerKind.FALLBACK
        seen_supervisor = False
        while time.monotonic() - started < timeout_s:
            state = read_state(self.data)
            if (
                state is not None
                and state.pid != previous_pid
                and self.host_pid.alive() == state.pid
                and host_running(self.settings)
            ):
                return state
            if supervised:
                alive = self.supervisor_pid.alive() is not None
                if seen_supervisor and not alive:
                    raise ServiceError("the supervisor exited; see logs/supervisor.log")
                seen_supervisor = seen_supervisor or alive
                if not seen_supervisor and time.monotonic() - started > SUPERVISOR_START_S:
                    raise ServiceError("the supervisor did not start; see logs/supervisor.out")
            time.sleep(POLL_S)
        waiting = self.breaker.status().get("waiting_s", 0)
        extra = f" (the start-up breaker is waiting {waiting:g} s)" if waiting else ""
        raise ServiceError(
            f"the host did not come up within {timeout_s:g} s{extra}; see `nanoclaw logs`"
        )

    @staticmethod
    def _wait(done: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if done():
                return
            time.sleep(POLL_S)
        raise ServiceError(f"timed out waiting for {what}")

    # -- status ---------------------------------------------------------------------------------
    def status(self) -> dict[str, object]:
        installed = self.installed()
        kind = installed.kind if installed else ManagerKind.FALLBACK
        try:
            detected, reason = choose_manager(self.settings.service_manager, self.probe)
        except ConfigError as exc:
            detected, reason = ManagerKind.FALLBACK, str(exc)
        return {
            "installed": installed.kind.value if installed else None,
            "unit": installed.unit_path if installed else None,
            "manager": kind.value,
            "would_install": detected.value,
            "reason": installed.reason if installed else reason,
            "survives_reboot": kind.survives_reboot and installed is not None,
            "supervisor_pid": self.supervisor_pid.alive(),
            "host_pid": self.host_pid.alive(),
            "breaker": self.breaker.status(),
        }
