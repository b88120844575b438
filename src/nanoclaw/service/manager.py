"""Which service manager can keep the host up here, and why (probes injected for tests)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from nanoclaw.errors import ConfigError


class ManagerKind(StrEnum):
    SYSTEMD_USER = "systemd-user"
    SYSTEMD_SYSTEM = "systemd-system"
    LAUNCHD = "launchd"
    FALLBACK = "fallback"

    @property
    def survives_reboot(self) -> bool:
        return self is not ManagerKind.FALLBACK


def _user_bus() -> bool:
    if os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return True
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    return runtime_dir is not None and Path(runtime_dir, "bus").exists()


@dataclass(frozen=True)
class Probe:
    """Facts about this machine; each a callable so tests can describe any machine."""

    platform: Callable[[], str] = lambda: sys.platform
    is_root: Callable[[], bool] = lambda: os.geteuid() == 0
    systemd_is_pid1: Callable[[], bool] = lambda: Path("/run/systemd/system").is_dir()
    user_bus: Callable[[], bool] = field(default=_user_bus)
    has_tool: Callable[[str], bool] = lambda name: shutil.which(name) is not None


def _detect(probe: Probe) -> tuple[ManagerKind, str]:
    if probe.platform() == "darwin":
        if probe.has_tool("launchctl"):
            return ManagerKind.LAUNCHD, "macOS: a launchd agent"
        return ManagerKind.FALLBACK, "macOS without launchctl"
    if not probe.systemd_is_pid1():
        return ManagerKind.FALLBACK, "systemd is not PID 1 here (a container?)"
    if not probe.has_tool("systemctl"):
        return ManagerKind.FALLBACK, "no systemctl"
    if probe.user_bus():
        return ManagerKind.SYSTEMD_USER, "systemd user bus: a user unit with lingering"
    if probe.is_root():
        return ManagerKind.SYSTEMD_SYSTEM, "root without a user bus: a system unit"
    return (
        ManagerKind.FALLBACK,
        "no systemd user bus (log in through a session, e.g. ssh) and not root",
    )


def choose_manager(wanted: str, probe: Probe | None = None) -> tuple[ManagerKind, str]:
    """(manager, reason). ``wanted`` is the ``service_manager`` setting (auto or a name)."""
    if wanted == "fallback":
        return ManagerKind.FALLBACK, "NANOCLAW_SERVICE_MANAGER=fallback"
    kind, reason = _detect(probe or Probe())
    if wanted != "auto" and not kind.value.startswith(wanted):
        raise ConfigError(f"service manager {wanted!r} is not usable here: {reason}")
    return kind, reason
