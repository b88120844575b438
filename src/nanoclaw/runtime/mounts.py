"""Extra mounts for an agent group, checked against an allowlist that lives outside the project.

Invariant 6: every path a container can influence is confined. An extra mount is accepted only
when the allowlist file exists (no file rejects all), the host path's realpath exists, is a
directory and sits under an allowed root's realpath (symlinks out of a root are rejected), no
component matches a blocked pattern, and the container path is a plain relative path (no ``..``,
no ``:``, not absolute). Mounts are read-only unless requested read-write *and* the root allows
it. A mount may never expose the project, the data folder or the allowlist file itself.

Allowlist file (JSON)::

    {"allowedRoots": [{"path": "~/projects", "allowReadWrite": false}],
     "blockedPatterns": ["my-secrets"]}

Per agent group, ``container_configs.additional_mounts`` holds
``[{"hostPath": "~/projects/site", "containerPath": "site", "readonly": true}]``; the mount
appears at ``/workspace/extra/<containerPath>``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nanoclaw.contract.runner_config import CONTAINER_EXTRA_DIR
from nanoclaw.errors import ConfigError, UnsafePathError, ValidationError
from nanoclaw.runtime.base import Mount

log = logging.getLogger("nanoclaw.runtime.mounts")

DEFAULT_BLOCKED_PATTERNS = (
    ".ssh",
    ".gnupg",
    ".gpg",
    ".aws",
    ".azure",
    ".gcloud",
    ".kube",
    ".docker",
    "credentials",
    ".env",
    ".netrc",
    ".npmrc",
    ".pypirc",
    "id_rsa",
    "id_ed25519",
    "private_key",
    ".secret",
)
_CONTAINER_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
MAX_EXTRA_MOUNTS = 16


@dataclass(frozen=True)
class AllowedRoot:
    path: Path  # realpath
    allow_read_write: bool


@dataclass(frozen=True)
class Allowlist:
    roots: tuple[AllowedRoot, ...]
    blocked_patterns: tuple[str, ...]
    source: Path | None  # the file it came from (never mountable)

    @classmethod
    def empty(cls) -> Allowlist:
        return cls(roots=(), blocked_patterns=DEFAULT_BLOCKED_PATTERNS, source=None)


@dataclass(frozen=True)
class MountRequest:
    host_path: str
    container_path: str | None = None
    read_only: bool = True

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> MountRequest:
        host = raw.get("hostPath", raw.get("host_path"))
        if not isinstance(host, str) or not host:
            raise ValidationError("an extra mount needs a hostPath", field="hostPath")
        target = raw.get("containerPath", raw.get("container_path"))
        if target is not None and not isinstance(target, str):
            raise ValidationError("containerPath must be a string", field="containerPath")
        ro = raw.get("readonly", raw.get("read_only", True))
        return cls(host_path=host, container_path=target, read_only=bool(ro))


@dataclass(frozen=True)
class Rejection:
    request: MountRequest
    reason: str


def load_allowlist(path: Path, *, project_root: Path) -> Allowlist:
    """Read the allowlist file; a missing file gives an allowlist that rejects everything."""
    path = path.expanduser()
    real = Path(os.path.realpath(path))
    if _is_within(real, Path(os.path.realpath(project_root))):
        raise ConfigError(
            f"the mount allowlist {path} is inside the project; move it outside "
            "(default ~/.config/nanoclaw/mount-allowlist.json)"
        )
    try:
        data = json.loads(real.read_text())
    except FileNotFoundError:
        return Allowlist.empty()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the mount allowlist {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"the mount allowlist {path} must be a JSON object")
    roots: list[AllowedRoot] = []
    for item in data.get("allowedRoots", []):
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            raise ConfigError(f"{path}: each allowedRoots entry needs a path")
        root_real = Path(os.path.realpath(Path(item["path"]).expanduser()))
        roots.append(AllowedRoot(root_real, bool(item.get("allowReadWrite", False))))
    extra = [p for p in data.get("blockedPatterns", []) if isinstance(p, str) and p]
    return Allowlist(
        roots=tuple(roots),
        blocked_patterns=(*DEFAULT_BLOCKED_PATTERNS, *extra),
        source=real,
    )


def parse_requests(raw_json: str | None) -> list[MountRequest]:
    """Parse ``container_configs.additional_mounts`` (a JSON list)."""
    if not raw_json:
        return []
    try:
        data = json.loads(raw_json)
    except ValueError as exc:
        raise ValidationError(
            f"additional_mounts is not JSON: {exc}", field="additional_mounts"
        ) from exc
    if not isinstance(data, list):
        raise ValidationError("additional_mounts must be a list", field="additional_mounts")
    return [MountRequest.parse(item) for item in data if isinstance(item, dict)]


def validate_container_path(request: MountRequest) -> str:
    """The mount's target under ``/workspace/extra``; a plain relative path, nothing else."""
    raw = request.container_path
    if raw is None or raw == "":
        raw = Path(request.host_path.rstrip("/")).name
    if "\x00" in raw or ":" in raw or raw.startswith("/") or "\\" in raw:
        raise UnsafePathError(f"container path {raw!r} must be relative, without ':'", path=raw)
    parts = [p for p in raw.split("/") if p]
    if not parts or any(p in (".", "..") or not _CONTAINER_PART.match(p) for p in parts):
        raise UnsafePathError(f"container path {raw!r} is not a plain relative path", path=raw)
    return f"{CONTAINER_EXTRA_DIR}/{'/'.join(parts)}"


def validate_mount(
    request: MountRequest, allowlist: Allowlist, *, protected: Iterable[Path] = ()
) -> Mount:
    """Turn one request into a ``Mount`` or raise ``UnsafePathError``/``ValidationError``."""
    target = validate_container_path(request)
    if not allowlist.roots:
        raise ValidationError(
            "no mount allowlist (or no allowed roots): extra mounts are refused", field="hostPath"
        )
    if "\x00" in request.host_path:
        raise UnsafePathError("NUL in host path", path=request.host_path)
    requested = Path(request.host_path).expanduser()
    if not requested.is_absolute():
        raise UnsafePathError("hostPath must be absolute (or start with ~)", path=request.host_path)
    _check_blocked(str(requested), allowlist.blocked_patterns, request.host_path)
    real = Path(os.path.realpath(requested))
    if not real.is_dir():
        raise UnsafePathError(
            f"{request.host_path} does not exist or is not a directory", path=request.host_path
        )
    _check_blocked(str(real), allowlist.blocked_patterns, request.host_path)
    root = next((r for r in allowlist.roots if _is_within(real, r.path)), None)
    if root is None:
        raise UnsafePathError(
            f"{request.host_path} (realpath {real}) is not under an allowed root",
            path=request.host_path,
        )
    guarded = [p for p in (*protected, allowlist.source) if p is not None]
    for item in guarded:
        item_real = Path(os.path.realpath(item))
        if _is_within(item_real, real) or _is_within(real, item_real):
            raise UnsafePathError(
                f"{request.host_path} would expose {item_real} to the sandbox",
                path=request.host_path,
            )
    read_only = request.read_only or not root.allow_read_write
    return Mount(source=real, target=target, read_only=read_only)


def resolve_extra_mounts(
    requests: Sequence[MountRequest], allowlist: Allowlist, *, protected: Iterable[Path] = ()
) -> tuple[list[Mount], list[Rejection]]:
    """Validate every request; rejected ones are returned with their reason (and logged)."""
    protected = list(protected)
    accepted: list[Mount] = []
    rejected: list[Rejection] = []
    targets: set[str] = set()
    for request in requests:
        try:
            if len(accepted) >= MAX_EXTRA_MOUNTS:
                raise ValidationError(
                    f"more than {MAX_EXTRA_MOUNTS} extra mounts", field="hostPath"
                )
            mount = validate_mount(request, allowlist, protected=protected)
            if mount.target in targets:
                raise ValidationError(f"two mounts at {mount.target}", field="containerPath")
        except ValidationError as exc:
            log.warning("extra mount %s refused: %s", request.host_path, exc)
            rejected.append(Rejection(request, str(exc)))
            continue
        targets.add(mount.target)
        accepted.append(mount)
    return accepted, rejected


def _check_blocked(path: str, patterns: Sequence[str], shown: str) -> None:
    for part in Path(path).parts:
        for pattern in patterns:
            if pattern in part:
                raise UnsafePathError(f"{shown} matches blocked pattern {pattern!r}", path=shown)


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


@dataclass(frozen=True)
class MountPolicy:
    """The checks an extra mount passes when it is set (admin) and again at every start."""

    allowlist_path: Path
    project_root: Path
    protected: tuple[Path, ...]

    @classmethod
    def for_install(
        cls, *, allowlist_path: Path, root: Path, data: Path, groups: Path
    ) -> MountPolicy:
        """The policy of one install: its project, data and groups folders are never mounted."""
        return cls(allowlist_path=allowlist_path, project_root=root, protected=(root, data, groups))

    def check(self, request: MountRequest) -> Mount:
        """Validate one request now, against the allowlist as it is today; raises with the reason."""
        allowlist = load_allowlist(self.allowlist_path, project_root=self.project_root)
        return validate_mount(request, allowlist, protected=self.protected)
