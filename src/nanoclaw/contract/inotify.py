"""Linux inotify through ctypes (stdlib only, so the runner in a sandbox can use it too).

Only what the change watcher needs: a non-blocking, close-on-exec instance, directory
watches, and parsing of the event records it reads.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import struct
import sys
from dataclasses import dataclass

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

# A SQLite commit in journal_mode=DELETE writes pages into the DB file and then deletes the
# journal: the journal's IN_DELETE is the commit point. Only the events that can mean a
# committed change are asked for (a new or renamed-in DB, a deleted journal); the IN_MODIFY of
# every page write and the IN_CLOSE_WRITE of every connection are not, so one transaction
# queues a few events instead of dozens (the watcher filters the rest by name and kind).
DIR_CHANGE_MASK = IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ONLYDIR

_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len
READ_BYTES = 64 * 1024


@dataclass(frozen=True)
class Event:
    wd: int
    mask: int
    name: str


class InotifyUnavailableError(OSError):
    """inotify cannot be used here (not Linux, no libc symbol, or the kernel refused)."""


def _libc() -> ctypes.CDLL:
    if not sys.platform.startswith("linux"):
        raise InotifyUnavailableError("inotify exists only on Linux")
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
    except (OSError, AttributeError) as exc:
        raise InotifyUnavailableError(f"no inotify in libc: {exc}") from exc
    return libc


class Inotify:
    """One inotify instance; the caller polls ``fd`` (it never blocks: IN_NONBLOCK)."""

    def __init__(self) -> None:
        self._lib = _libc()
        fd = self._lib.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise InotifyUnavailableError(err, f"inotify_init1: {os.strerror(err)}")
        self.fd: int = fd

    def add_dir(self, path: str) -> int:
        """Watch a directory for changes of the files in it; returns the watch descriptor."""
        wd = self._lib.inotify_add_watch(self.fd, os.fsencode(path), DIR_CHANGE_MASK)
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_add_watch {path}: {os.strerror(err)}")
        return int(wd)

    def remove(self, wd: int) -> None:
        self._lib.inotify_rm_watch(self.fd, wd)  # an already-gone watch is not an error here

    def read(self) -> list[Event]:
        """Every event queued now (none when nothing is queued)."""
        events: list[Event] = []
        while True:
            try:
                data = os.read(self.fd, READ_BYTES)
            except BlockingIOError:
                return events
            if not data:
                return events
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size
                raw = data[offset : offset + length]
                offset += length
                events.append(Event(wd, mask, os.fsdecode(raw.split(b"\0", 1)[0])))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        # A watcher built but never run or closed (a host built and dropped) still gives its
        # instance back: the per-user limit is small.
        fd = getattr(self, "fd", -1)
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
            self.fd = -1
