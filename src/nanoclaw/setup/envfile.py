"""The install's dotenv file: where it is, reading it, and setting keys in it (always mode 0600)."""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import dotenv_values

from nanoclaw.settings import Settings

ENV_FILE_MODE = 0o600


def env_file_path(settings: Settings) -> Path:
    """``NANOCLAW_ENV_FILE`` when set (tests, several installs), else ``<root>/.env``."""
    named = os.environ.get("NANOCLAW_ENV_FILE")
    return Path(named) if named else settings.root / ".env"


def read_env(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def store_env(path: Path, values: dict[str, str], *, remove: tuple[str, ...] = ()) -> None:
    """Set ``values`` (replacing earlier lines of those keys) and drop ``remove``; 0600 throughout.

    The file is created 0600 before any secret is written, and rewritten through a 0600
    temporary file renamed over it, so a secret is never readable by others, even briefly.
    """
    drop = set(values) | set(remove)
    lines = path.read_text().splitlines() if path.exists() else []
    kept = [ln for ln in lines if ln.split("=", 1)[0].strip().removeprefix("export ") not in drop]
    kept += [f"{key}={_quote(value)}" for key, value in values.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, ENV_FILE_MODE)
    try:
        os.fchmod(fd, ENV_FILE_MODE)
        os.write(fd, ("\n".join(kept) + "\n").encode())
    finally:
        os.close(fd)
    tmp.replace(path)


def _quote(value: str) -> str:
    if value and all(c.isalnum() or c in "-_.:/@+=,~" for c in value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
