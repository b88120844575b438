"""The sandbox file system plan shared by the docker and bwrap runtimes: what appears where.

Only directories are mounted (invariant 2). ``/session`` is read-only except the two folders the
runner writes (``outbound/`` and ``outbox/``); the group folder is read-write; global memory, the
runner config and the credential proxy's socket folder are read-only. Everything else a sandbox
sees comes from the image (docker) or read-only system folders (bwrap).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from nanoclaw.contract.runner_config import (
    CONTAINER_GLOBAL_DIR,
    CONTAINER_GROUP_DIR,
    CONTAINER_SESSION_DIR,
)
from nanoclaw.errors import RunnerError, ValidationError
from nanoclaw.runtime.base import Mount, RunSpec

CONTAINER_PROXY_DIR = "/run/nanoclaw"
PROXY_SOCKET_NAME = "model.sock"
CONTAINER_HOME = "/home/agent"
TMPFS_TMP_BYTES = 256 * 1024 * 1024
TMPFS_HOME_BYTES = 64 * 1024 * 1024

# The session sub-folders a runner may write (everything else under /session is read-only).
RUNNER_WRITABLE_SESSION_DIRS = ("outbound", "outbox")

_NAME_PART = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$", re.IGNORECASE)
# Environment names that look like credentials never enter a sandbox (invariant 5).
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH)", re.IGNORECASE)


CONTAINER_PACKAGES_DIR = "/opt/packages"


def sandbox_mounts(spec: RunSpec) -> list[Mount]:
    """The ordered mount list of a sandbox: parents before the folders nested in them."""
    mounts = [
        Mount(spec.session_dir, CONTAINER_SESSION_DIR, read_only=True),
        *(
            Mount(spec.session_dir / name, f"{CONTAINER_SESSION_DIR}/{name}", read_only=False)
            for name in RUNNER_WRITABLE_SESSION_DIRS
        ),
        Mount(spec.group_dir, CONTAINER_GROUP_DIR, read_only=False),
        Mount(spec.global_dir, CONTAINER_GLOBAL_DIR, read_only=True),
    ]
    if spec.proxy_dir is not None:
        mounts.append(Mount(spec.proxy_dir, CONTAINER_PROXY_DIR, read_only=True))
    if spec.packages_dir is not None:
        mounts.append(Mount(spec.packages_dir, CONTAINER_PACKAGES_DIR, read_only=True))
    mounts.extend(spec.extra_mounts)
    return mounts


def sandbox_env(spec: RunSpec, *, home: str = CONTAINER_HOME) -> dict[str, str]:
    """The complete environment of a sandboxed runner; refuses anything that looks like a secret."""
    env = {
        "HOME": home,
        "TZ": spec.timezone,
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    check_env_is_clean(spec.env, session_id=spec.session_id)
    env.update(spec.env)
    return env


def check_env_is_clean(env: Mapping[str, str], *, session_id: str) -> None:
    for name in env:
        if _SECRET_NAME.search(name):
            raise RunnerError(
                f"refusing to pass {name!r} into a sandbox: credentials never enter one",
                session_id=session_id,
            )


def runner_name(install_id: str, session_id: str) -> str:
    """``nanoclaw-<install>-<session>``: one per session; the runtime itself refuses a second."""
    for part, what in ((install_id, "install id"), (session_id, "session id")):
        if not _NAME_PART.match(part):
            raise ValidationError(f"invalid {what} for a sandbox name: {part!r}", field=what)
    return f"nanoclaw-{install_id}-{session_id}"
