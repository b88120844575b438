"""A full disk is recognised under every layer that can report it."""

from __future__ import annotations

import errno
import sqlite3

from sqlalchemy.exc import OperationalError

from nanoclaw.storage_errors import is_disk_full


def _sqlite_full() -> sqlite3.OperationalError:
    exc = sqlite3.OperationalError("database or disk is full")
    exc.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
    return exc


def test_enospc_and_sqlite_full_are_a_full_disk_even_when_wrapped() -> None:
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OperationalError("INSERT", {}, _sqlite_full()))
    try:
        try:
            raise _sqlite_full()
        except sqlite3.OperationalError as inner:
            raise RuntimeError("write failed") from inner
    except RuntimeError as outer:
        assert is_disk_full(outer)


def test_other_storage_errors_are_not_a_full_disk() -> None:
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(sqlite3.OperationalError("no such table: messages_in"))
    assert not is_disk_full(ValueError("x"))
