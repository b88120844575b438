"""Session DBs a sandbox can write are probed through their folder's descriptor before SQLite opens them.

DESIGN §2.6. SQLite opens by name, follows symlinks and blocks on a FIFO, and Python's sqlite3
takes no open flags. So before every connection the host (1) opens the DB's folder without
following links (:mod:`nanoclaw.contract.confined`), (2) opens the DB and its ``-journal``
beneath it ``O_NOFOLLOW|O_NONBLOCK`` and checks with ``fstat`` that each is a regular file under
the size bound, (3) lets SQLite open ``/proc/self/fd/<dirfd>/<name>`` (the folder cannot be
swapped under that path) on a thread with a deadline (inline for the host-only ``inbound/``),
and (4) checks that ``PRAGMA database_list`` names the file it probed in the folder the kernel
reports for the descriptor, and that the name still is the probed inode. Any failure is a
:class:`~nanoclaw.errors.SandboxFileError`; the host quarantines the session on it. A missing
DB is created empty with ``O_EXCL`` first, so SQLite never creates a file by name.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import urllib.parse
from pathlib import Path

from nanoclaw.contract.confined import ConfinedDir, call_with_deadline
from nanoclaw.errors import SandboxFileError, SandboxFileProblem

MAX_SESSION_DB_BYTES = 2 * 1024 * 1024 * 1024
SESSION_DB_OPEN_DEADLINE_S = 10.0
JOURNAL_SUFFIX = "-journal"
# Mounted read-only into every sandbox (runtime/plan.py): nothing can be planted there between
# the probe and SQLite's open, so its connections skip the deadline thread (~0.4 ms each).
HOST_ONLY_FOLDERS = frozenset({"inbound"})


def probe_session_db(
    folder: ConfinedDir, name: str, *, max_bytes: int = MAX_SESSION_DB_BYTES
) -> tuple[int, int] | None:
    """(st_dev, st_ino) of a regular DB file beneath ``folder``, None when absent.

    The ``-journal`` beside it must be absent or a regular file too (SQLite opens it to roll
    back a hot journal, and would block on a FIFO there just the same).
    """
    try:
        with folder.open_regular(name, max_bytes=max_bytes) as (_fd, st):
            identity = (st.st_dev, st.st_ino)
    except FileNotFoundError:
        return None
    try:
        with folder.open_regular(name + JOURNAL_SUFFIX, max_bytes=max_bytes):
            pass
    except FileNotFoundError:
        pass
    return identity


def connect_session_db(
    path: Path,
    *,
    readonly: bool,
    max_bytes: int = MAX_SESSION_DB_BYTES,
    deadline_s: float = SESSION_DB_OPEN_DEADLINE_S,
    timeout_s: float = 5.0,
) -> sqlite3.Connection:
    """A sqlite3 connection to ``path`` (``<session>/<sub>/<name>``) that passed the probe.

    ``path.parent.parent`` (the session folder) is trusted: a sandbox mounts only its
    sub-folders. Raises ``FileNotFoundError`` for a missing DB when ``readonly``.
    """
    folder = ConfinedDir.open(path.parent.parent, path.parent.name)
    try:
        identity = probe_session_db(folder, path.name, max_bytes=max_bytes)
        if identity is None:
            if readonly:
                raise FileNotFoundError(2, "no such session DB", str(path))
            folder.create_exclusive(path.name, b"")
            identity = probe_session_db(folder, path.name, max_bytes=max_bytes)
            if identity is None:
                raise _swapped(path, "vanished after it was created")
        # The kernel's path of the folder is absolute and normalised: joined as text.
        expected = f"{folder.real_path().rstrip('/')}/{path.name}"
        via_fd = f"/proc/self/fd/{folder.fd}/{path.name}"
        uri = f"file:{urllib.parse.quote(via_fd)}?mode={'ro' if readonly else 'rw'}"

        def connect() -> sqlite3.Connection:
            return sqlite3.connect(
                uri, uri=True, timeout=timeout_s, check_same_thread=False, isolation_level=None
            )

        try:
            if path.parent.name in HOST_ONLY_FOLDERS:
                conn = connect()
            else:
                conn = call_with_deadline(connect, deadline_s=deadline_s, what=str(path))
        except SandboxFileError as exc:
            if exc.problem is SandboxFileProblem.TIMEOUT:
                unjam_fifos(folder)
            raise
        try:
            _check_opened(conn, folder, path, expected, identity)
        except BaseException:
            conn.close()
            raise
        return conn
    finally:
        folder.close()


def unjam_fifos(folder: ConfinedDir) -> int:
    """Release an open stuck on a FIFO swapped in after the probe: open each FIFO for writing.

    ``O_WRONLY|O_NONBLOCK`` never blocks (ENXIO without a reader) and gives a blocked reader
    its end-of-file at once, so the stuck SQLite open returns (and then fails its checks).
    A FIFO moved out of the folder or unlinked cannot be reached; the session is quarantined
    on the timeout either way, so at most that one open stays stuck.
    """
    released = 0
    for name in os.listdir(folder.fd):  # noqa: PTH208 - listed by descriptor, not by path
        try:
            st = os.stat(name, dir_fd=folder.fd, follow_symlinks=False)
            if not stat.S_ISFIFO(st.st_mode):
                continue
            fd = os.open(
                name, os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder.fd
            )
        except OSError:
            continue
        os.close(fd)
        released += 1
    return released


def _check_opened(
    conn: sqlite3.Connection,
    folder: ConfinedDir,
    path: Path,
    expected: str,
    identity: tuple[int, int],
) -> None:
    names = {row[1]: row[2] for row in conn.execute("PRAGMA database_list")}
    if names.get("main") != expected:
        raise _swapped(path, f"SQLite opened {names.get('main')!r}, not the probed {expected!r}")
    try:
        st = os.stat(path.name, dir_fd=folder.fd, follow_symlinks=False)
    except FileNotFoundError as exc:
        raise _swapped(path, "was removed while it was opened") from exc
    if (st.st_dev, st.st_ino) != identity:
        raise _swapped(path, "was replaced while it was opened")


def _swapped(path: Path, detail: str) -> SandboxFileError:
    return SandboxFileError(f"{path} {detail}", path=str(path), problem=SandboxFileProblem.SWAPPED)
