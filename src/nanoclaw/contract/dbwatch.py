"""Cheap change detection for a rollback-journal SQLite file, used to wake on change.

In ``journal_mode=DELETE`` SQLite bumps the header's file change counter (bytes 24..27)
on every committed write transaction, so reading four bytes tells whether anything
changed, independent of mtime granularity or of the filesystem under a mount.

The file lives in a folder a sandbox writes, so it is opened through the folder's descriptor,
never following a link and never blocking (``O_NONBLOCK``): a FIFO, a symlink or any other
non-regular file reads as "absent" here (the next real open refuses it and says why).
"""

from __future__ import annotations

import os
from pathlib import Path

from nanoclaw.contract.confined import ConfinedDir
from nanoclaw.contract.dbprobe import MAX_SESSION_DB_BYTES
from nanoclaw.errors import SandboxFileError

_COUNTER_OFFSET = 24


def change_signature(path: Path) -> tuple[int, int] | None:
    """Return (inode, change counter) of a SQLite file, or None when it is absent or too short."""
    try:
        with (
            ConfinedDir.open(path.parent.parent, path.parent.name) as folder,
            folder.open_regular(path.name, max_bytes=MAX_SESSION_DB_BYTES) as (fd, st),
        ):
            header = os.pread(fd, 4, _COUNTER_OFFSET)
            inode = st.st_ino
    except (FileNotFoundError, SandboxFileError):
        return None
    if len(header) < 4:
        return None
    return inode, int.from_bytes(header, "big")
