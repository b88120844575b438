"""Cheap change detection for a rollback-journal SQLite file, used to wake on change.

In ``journal_mode=DELETE`` SQLite bumps the header's file change counter (bytes 24..27)
on every committed write transaction, so reading four bytes tells whether anything
changed, independent of mtime granularity or of the filesystem under a mount.
"""

from __future__ import annotations

import os
from pathlib import Path

_COUNTER_OFFSET = 24


def change_signature(path: Path) -> tuple[int, int] | None:
    """Return (inode, change counter) of a SQLite file, or None when it is absent or too short."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        header = os.pread(fd, 4, _COUNTER_OFFSET)
        inode = os.fstat(fd).st_ino
    finally:
        os.close(fd)
    if len(header) < 4:
        return None
    return inode, int.from_bytes(header, "big")
