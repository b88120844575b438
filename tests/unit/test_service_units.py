"""The generated service definitions: systemd-analyze verify for the units, plistlib for launchd."""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nanoclaw.errors import ConfigError
from nanoclaw.service.manager import ManagerKind, Probe, choose_manager
from nanoclaw.service.units import (
    ServicePaths,
    carried_env,
    launchd_plist,
    service_name,
    systemd_unit,
)
from nanoclaw.settings import Settings

ANALYZE = shutil.which("systemd-analyze")
NANOCLAW_BIN = Path(sys.executable).parent / "nanoclaw"
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (scripts/test-prereqs.sh installs it)"
)


def paths(settings: Settings) -> ServicePaths:
    return ServicePaths.of(settings, NANOCLAW_BIN)


def verify(unit_dir: Path, name: str, text: str, *, user: bool) -> subprocess.CompletedProcess[str]:
    unit = unit_dir / name
    unit.write_text(text)
    env = dict(os.environ)
    if user:  # the user manager's paths live under XDG_RUNTIME_DIR
        runtime_dir = unit_dir / "runtime"
        runtime_dir.mkdir(mode=0o700, exist_ok=True)
        env["XDG_RUNTIME_DIR"] = str(runtime_dir)
    assert ANALYZE is not None
    argv = [ANALYZE, *(["--user"] if user else []), "verify", str(unit)]
    return subprocess.run(argv, capture_output=True, text=True, env=env, check=False, timeout=60)


@needs_analyze
def test_the_user_unit_passes_systemd_analyze_verify(settings: Settings, tmp_path: Path) -> None:
    env = carried_env({"NANOCLAW_DATA_DIR": str(tmp_path / "data dir"), "SECRET": "x"})
    text = systemd_unit(paths(settings), install_id=settings.install_id, system_user=None, env=env)
    done = verify(tmp_path, f"{service_name(settings)}.service", text, user=True)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    assert "Restart=always" in text and "WantedBy=default.target" in text
    assert f'"NANOCLAW_DATA_DIR={tmp_path}/data dir"' in text and "SECRET" not in text


@needs_analyze
def test_the_system_unit_passes_systemd_analyze_verify(settings: Settings, tmp_path: Path) -> None:
    text = systemd_unit(paths(settings), install_id=settings.install_id, system_user="root", env={})
    done = verify(tmp_path, f"{service_name(settings)}.service", text, user=False)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    assert "User=root" in text and "WantedBy=multi-user.target" in text
    assert f"--pid-file {settings.data_path}/host.pid" in text


@needs_analyze
def test_verify_catches_a_broken_unit(settings: Settings, tmp_path: Path) -> None:
    """Positive control: the check above can fail."""
    text = systemd_unit(paths(settings), install_id="x", system_user=None, env={})
    broken = text.replace("Restart=always", "Restart=sometimes").replace(
        str(NANOCLAW_BIN), "/nonexistent/nanoclaw"
    )
    done = verify(tmp_path, "broken.service", broken, user=True)
    assert done.returncode != 0 or done.stderr.strip()


def test_the_launchd_plist_keeps_the_host_alive(settings: Settings) -> None:
    data = plistlib.loads(launchd_plist(paths(settings), label="com.nanoclaw.t", env={"A": "b"}))
    assert data["Label"] == "com.nanoclaw.t"
    assert data["KeepAlive"] is True and data["RunAtLoad"] is True
    assert data["ProgramArguments"][:2] == [str(NANOCLAW_BIN), "run"]
    assert str(settings.data_path / "host.pid") in data["ProgramArguments"]
    assert data["EnvironmentVariables"]["A"] == "b"


def _probe(**facts: object) -> Probe:
    base: dict[str, object] = dict(
        platform="linux", is_root=False, systemd_is_pid1=True, user_bus=True, tools=True
    )
    base.update(facts)
    return Probe(
        platform=lambda: str(base["platform"]),
        is_root=lambda: bool(base["is_root"]),
        systemd_is_pid1=lambda: bool(base["systemd_is_pid1"]),
        user_bus=lambda: bool(base["user_bus"]),
        has_tool=lambda _name: bool(base["tools"]),
    )


def test_the_manager_follows_the_machine() -> None:
    assert choose_manager("auto", _probe())[0] is ManagerKind.SYSTEMD_USER
    assert (
        choose_manager("auto", _probe(user_bus=False, is_root=True))[0]
        is ManagerKind.SYSTEMD_SYSTEM
    )
    kind, reason = choose_manager("auto", _probe(systemd_is_pid1=False))
    assert kind is ManagerKind.FALLBACK and "PID 1" in reason
    assert choose_manager("auto", _probe(user_bus=False))[0] is ManagerKind.FALLBACK
    assert choose_manager("auto", _probe(platform="darwin"))[0] is ManagerKind.LAUNCHD
    assert choose_manager("fallback", _probe())[0] is ManagerKind.FALLBACK
    assert not ManagerKind.FALLBACK.survives_reboot and ManagerKind.SYSTEMD_USER.survives_reboot
    with pytest.raises(ConfigError, match="not usable here"):
        choose_manager("systemd", _probe(systemd_is_pid1=False))
