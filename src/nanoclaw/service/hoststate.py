"""What the running host uses, recorded at start in ``data/host-state.json`` (0600).

``status`` reads it to say what the running host uses (its settings hash, model, endpoint) and
whether the current settings differ; setup and ``doctor`` read the proxy address and check token
to try the credential through the running host's own credential proxy. It holds no model
credential: the check token is only good for the proxy, and dies with the host.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from pydantic import BaseModel, ValidationError

STATE_FILE = "host-state.json"
HOST_PID_FILE = "host.pid"
STATE_FILE_MODE = 0o600


class HostState(BaseModel):
    pid: int
    started_at: str
    version: str
    settings_hash: str
    provider: str
    model: str
    base_url: str | None  # None = api.anthropic.com
    credential: str  # "api key", "auth token" or "none" (never the value)
    runtime: str
    timezone: str
    proxy_socket: str | None = None
    proxy_tcp: str | None = None  # host:port
    check_token: str | None = None


def state_path(data_path: Path) -> Path:
    return data_path / STATE_FILE


def write_state(data_path: Path, state: HostState) -> None:
    path = state_path(data_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, STATE_FILE_MODE)
    try:
        os.fchmod(fd, STATE_FILE_MODE)
        os.write(fd, state.model_dump_json(indent=2).encode())
    finally:
        os.close(fd)
    tmp.replace(path)


def read_state(data_path: Path) -> HostState | None:
    try:
        return HostState.model_validate(json.loads(state_path(data_path).read_text()))
    except (OSError, ValueError, ValidationError):
        return None


def clear_state(data_path: Path, pid: int) -> None:
    state = read_state(data_path)
    if state is not None and state.pid == pid:
        with contextlib.suppress(OSError):
            state_path(data_path).unlink()
