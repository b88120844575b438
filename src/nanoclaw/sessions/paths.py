"""Path confinement (invariant 6) for every name a user, an adapter or a container can influence."""

from __future__ import annotations

from pathlib import Path

from nanoclaw.errors import UnsafePathError


def safe_name(name: str) -> str:
    """Accept a single path component: non-empty, not ``.``/``..``, no separator or NUL."""
    if (
        not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or "\x00" in name
        or Path(name).name != name
    ):
        raise UnsafePathError(f"unsafe file name {name!r}", path=name)
    return name


def confined(root: Path, *parts: str) -> Path:
    """Join safe components under ``root`` and check the real path stays inside it."""
    for part in parts:
        safe_name(part)
    real_root = root.resolve()
    candidate = real_root.joinpath(*parts)
    resolved = candidate.resolve()
    if resolved != real_root and real_root not in resolved.parents:
        raise UnsafePathError(f"{candidate} escapes {real_root}", path=str(candidate))
    return candidate
