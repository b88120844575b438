"""The service definitions: a systemd unit (user or system) and a launchd agent plist.

Both run ``nanoclaw run`` with the log and pid files of this install, restart it whenever it
exits (``Restart=always`` / ``KeepAlive``), and carry the path overrides (data, logs, groups,
env file, socket) the installing shell had, so the service reads the same install. Secrets are
never written here: the host reads them from ``.env``.
"""

from __future__ import annotations

import os
import plistlib
from dataclasses import dataclass
from pathlib import Path

from nanoclaw.settings import Settings

# Location settings a service must share with the shell that installed it (never secrets).
CARRIED_ENV = (
    "NANOCLAW_ROOT",
    "NANOCLAW_DATA_DIR",
    "NANOCLAW_LOGS_DIR",
    "NANOCLAW_GROUPS_DIR",
    "NANOCLAW_ENV_FILE",
    "NANOCLAW_CLI_SOCKET_PATH",
)
RESTART_SEC_S = 5
STOP_TIMEOUT_S = 30


@dataclass(frozen=True)
class ServicePaths:
    nanoclaw_bin: Path
    root: Path
    log_file: Path
    pid_file: Path
    out_file: Path

    @classmethod
    def of(cls, settings: Settings, nanoclaw_bin: Path) -> ServicePaths:
        return cls(
            nanoclaw_bin=nanoclaw_bin,
            root=settings.root,
            log_file=settings.logs_path / "host.log",
            pid_file=settings.data_path / "host.pid",
            out_file=settings.logs_path / "host.out",
        )

    def host_argv(self) -> list[str]:
        return [
            str(self.nanoclaw_bin),
            "run",
            "--log-file",
            str(self.log_file),
            "--pid-file",
            str(self.pid_file),
        ]


def service_name(settings: Settings) -> str:
    """One service per install, so two checkouts on one machine never replace each other's."""
    return f"nanoclaw-{settings.install_id}"


def carried_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    environ = dict(os.environ) if environ is None else environ
    return {k: environ[k] for k in CARRIED_ENV if environ.get(k)}


def _systemd_quote(arg: str) -> str:
    if arg and all(c.isalnum() or c in "/._-+:@=," for c in arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd_unit(
    paths: ServicePaths,
    *,
    install_id: str,
    system_user: str | None,
    env: dict[str, str],
) -> str:
    """A user unit (``system_user`` None) or a system unit that runs as ``system_user``."""
    lines = [
        "[Unit]",
        f"Description=NanoClaw host (install {install_id})",
        "After=network-online.target docker.service",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"WorkingDirectory={_systemd_quote(str(paths.root))}",
        "ExecStart=" + " ".join(_systemd_quote(a) for a in paths.host_argv()),
        "Restart=always",
        f"RestartSec={RESTART_SEC_S}",
        # SIGTERM to the host (it stops its runners), SIGKILL to what is left after the timeout.
        "KillMode=mixed",
        f"TimeoutStopSec={STOP_TIMEOUT_S}",
        "Environment=PYTHONUNBUFFERED=1",
    ]
    lines += [f"Environment={_systemd_quote(f'{k}={v}')}" for k, v in sorted(env.items())]
    if system_user is not None:
        lines.append(f"User={system_user}")
    lines += [
        "",
        "[Install]",
        "WantedBy=" + ("multi-user.target" if system_user is not None else "default.target"),
        "",
    ]
    return "\n".join(lines)


def launchd_label(settings: Settings) -> str:
    return f"com.nanoclaw.{settings.install_id}"


def launchd_plist(paths: ServicePaths, *, label: str, env: dict[str, str]) -> bytes:
    return plistlib.dumps(
        {
            "Label": label,
            "ProgramArguments": paths.host_argv(),
            "WorkingDirectory": str(paths.root),
            "RunAtLoad": True,
            "KeepAlive": True,
            "ThrottleInterval": RESTART_SEC_S,
            "StandardOutPath": str(paths.out_file),
            "StandardErrorPath": str(paths.out_file),
            "EnvironmentVariables": {"PYTHONUNBUFFERED": "1", **env},
        }
    )
