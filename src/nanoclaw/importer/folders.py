"""Copy an agent's source folder into ours: never overwrite, never follow a link, flag v1-only references."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

MAX_FILE_BYTES = 50 * 1024 * 1024
# Machinery only v1 had: files that mention it still work differently here.
V1_ONLY_MARKERS = ("/workspace/ipc", "store/messages.db", "data/ipc/", "mcp__nanoclaw__")
SKIPPED_NAMES = frozenset({".claude", "node_modules", ".git", "logs"})
GLOBAL_BEGIN = "<!-- imported from NanoClaw {kind}: begin -->"
GLOBAL_END = "<!-- imported from NanoClaw {kind}: end -->"


@dataclass
class FolderCopy:
    copied: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # already present here: left alone
    skipped: list[str] = field(default_factory=list)  # links, devices, too large, unreadable
    flagged: list[str] = field(default_factory=list)  # mention v1-only machinery


def _open_dir(parent_fd: int, name: str) -> int:
    """Open (creating if needed) a subdirectory without following a link at that name."""
    try:
        os.mkdir(name, 0o755, dir_fd=parent_fd)
    except FileExistsError:
        pass
    return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent_fd)


def write_new(dir_fd: int, name: str, data: bytes) -> bool:
    """Create ``name`` in the directory; False when something (even a dangling link) is there."""
    try:
        fd = os.open(
            name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=dir_fd
        )
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return True


def read_if_regular(dir_fd: int, name: str, *, limit: int = MAX_FILE_BYTES) -> bytes | None:
    """The bytes of a regular file at ``name`` (no link followed), or None."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        return f.read(limit + 1)


def copy_folder(source: Path, target: Path, *, memory_file: str) -> FolderCopy:
    """Copy ``source`` into ``target``; the source's ``memory_file`` becomes ``CLAUDE.local.md``."""
    report = FolderCopy()
    target.mkdir(parents=True, exist_ok=True)
    root_fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        _copy_tree(source, root_fd, Path(), report, memory_file=memory_file)
    finally:
        os.close(root_fd)
    return report


def _copy_tree(
    source: Path, dir_fd: int, relative: Path, report: FolderCopy, *, memory_file: str
) -> None:
    try:
        entries = sorted(os.scandir(source), key=lambda e: e.name)
    except OSError as exc:
        report.skipped.append(f"{relative or '.'}: {exc.strerror}")
        return
    for entry in entries:
        shown = (relative / entry.name).as_posix()
        if entry.name in SKIPPED_NAMES:
            report.skipped.append(f"{shown}: source-only state")
            continue
        if entry.is_symlink():
            report.skipped.append(f"{shown}: a symbolic link")
            continue
        if entry.is_dir(follow_symlinks=False):
            try:
                child = _open_dir(dir_fd, entry.name)
            except OSError as exc:
                report.skipped.append(f"{shown}: {exc.strerror}")
                continue
            try:
                _copy_tree(Path(entry.path), child, relative / entry.name, report, memory_file="")
            finally:
                os.close(child)
            continue
        if not entry.is_file(follow_symlinks=False):
            report.skipped.append(f"{shown}: not a regular file")
            continue
        try:
            data = Path(entry.path).read_bytes()
        except OSError as exc:
            report.skipped.append(f"{shown}: {exc.strerror}")
            continue
        if len(data) > MAX_FILE_BYTES:
            report.skipped.append(f"{shown}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
            continue
        name = entry.name
        if memory_file and name == memory_file:
            name = "CLAUDE.local.md"
            if _fill_empty(dir_fd, name, data):
                report.copied.append(f"{shown} → CLAUDE.local.md")
                _flag(report, shown, data)
            else:
                report.kept.append(f"{shown} (CLAUDE.local.md already has content)")
            continue
        if memory_file and name == "CLAUDE.md":
            report.kept.append(f"{shown} (the agent's base instructions are ours)")
            continue
        if write_new(dir_fd, name, data):
            report.copied.append(shown)
            _flag(report, shown, data)
        else:
            report.kept.append(shown)


def _fill_empty(dir_fd: int, name: str, data: bytes) -> bool:
    """Write ``data`` into ``name`` when it is missing or an empty regular file."""
    current = read_if_regular(dir_fd, name)
    if current is None:
        return write_new(dir_fd, name, data)
    if current.strip():
        return False
    fd = os.open(name, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    with os.fdopen(fd, "r+b") as out:
        info = os.fstat(out.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE_BYTES:
            return False
        if out.read().strip():
            return False
        out.seek(0)
        out.truncate()
        out.write(data)
    return True


def _flag(report: FolderCopy, shown: str, data: bytes) -> None:
    text = data[:1_000_000].decode("utf-8", errors="ignore")
    hits = [m for m in V1_ONLY_MARKERS if m in text]
    if hits:
        report.flagged.append(f"{shown}: mentions {', '.join(hits)}")


def merge_global(source_md: Path, target_md: Path, *, kind: str) -> bool:
    """Add the source's shared instructions to ours once, in a marked section."""
    try:
        text = source_md.read_text(errors="replace").strip()
    except OSError:
        return False
    if not text:
        return False
    begin, end = GLOBAL_BEGIN.format(kind=kind), GLOBAL_END.format(kind=kind)
    current = target_md.read_text() if target_md.is_file() else ""
    if begin in current:
        return False
    target_md.parent.mkdir(parents=True, exist_ok=True)
    joined = current.rstrip() + ("\n\n" if current.strip() else "") + f"{begin}\n{text}\n{end}\n"
    target_md.write_text(joined)
    return True
