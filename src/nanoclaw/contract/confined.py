"""Confined file access (DESIGN §2.6): every path under a sandbox-writable folder is opened, never resolved.

A sandbox can rename, swap (``renameat2(RENAME_EXCHANGE)``) or replace any name inside the
folders it may write, at any moment, so "check the path, then use the path" is a race it can
win. Here a trusted root (a host-only folder) is opened once; every further component is
reached through a directory file descriptor with ``openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS)``
where the kernel has it, else one ``openat`` per component with ``O_NOFOLLOW`` (``O_DIRECTORY``
for folders). Files are opened ``O_NONBLOCK`` (a FIFO never blocks the opener), checked with
``fstat`` on the descriptor (a regular file of bounded size), then read or written through that
same descriptor. Writes create with ``O_EXCL`` or write a fresh temporary name and rename it
over the target inside the directory descriptor. Symlinks, FIFOs, devices, sockets and
oversized files are refused with :class:`~nanoclaw.errors.SandboxFileError`, which callers turn
into a result for the agent. Stdlib only: the runner image ships this package.
"""

from __future__ import annotations

import ctypes
import errno
import os
import queue
import secrets
import shutil
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from nanoclaw.errors import SandboxFileError, SandboxFileProblem

T = TypeVar("T")

DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024
FILE_MODE = 0o644
DIR_MODE = 0o755
SYS_OPENAT2 = 437  # the same number on every architecture Linux added it to (5.6+)
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
# link() refused because the filesystem has no hard links (FAT, some network filesystems).
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK})

_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CREATE_FLAGS = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | os.O_NOFOLLOW
    | os.O_NONBLOCK
    | os.O_CLOEXEC
    | os.O_NOCTTY
)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


class _Openat2:
    """``openat2`` through ``syscall(2)``; ``available`` turns False on the first ENOSYS."""

    def __init__(self) -> None:
        self.available = False
        self._syscall: Callable[..., int] | None = None
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            self._syscall = libc.syscall
            self.available = os.uname().sysname == "Linux"
        except (OSError, AttributeError):
            self.available = False

    def __call__(self, dir_fd: int, path: str, flags: int, mode: int) -> int:
        assert self._syscall is not None
        how = _OpenHow(
            flags, mode if flags & os.O_CREAT else 0, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS
        )
        fd = self._syscall(
            ctypes.c_long(SYS_OPENAT2),
            ctypes.c_int(dir_fd),
            ctypes.c_char_p(os.fsencode(path)),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd < 0:
            err = ctypes.get_errno()
            if err in (errno.ENOSYS, errno.EPERM) and self.available:
                # ENOSYS: older kernel; EPERM: a seccomp filter that forbids it. Fall back.
                self.available = False
                raise _FallbackError
            raise OSError(err, os.strerror(err), path)
        return int(fd)


class _FallbackError(Exception):
    """openat2 is not usable in this process; resolve one component at a time."""


_openat2 = _Openat2()


def openat2_available() -> bool:
    """Whether this process resolves through ``openat2`` (else per-component ``openat``)."""
    return _openat2.available


def _check_component(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\x00" in name:
        raise SandboxFileError(
            f"unsafe path component {name!r}", path=name, problem=SandboxFileProblem.UNSAFE_NAME
        )
    return name


def _refusal(exc: OSError, where: str) -> SandboxFileError | None:
    """Map the errors a planted name causes to a typed refusal (None: let the OSError through)."""
    if exc.errno == errno.ELOOP:
        return SandboxFileError(
            f"{where} is a symbolic link", path=where, problem=SandboxFileProblem.SYMLINK
        )
    if exc.errno == errno.ENOTDIR:
        return SandboxFileError(
            f"{where} is not a folder", path=where, problem=SandboxFileProblem.NOT_A_FOLDER
        )
    if exc.errno == errno.EXDEV:
        return SandboxFileError(
            f"{where} leaves its folder", path=where, problem=SandboxFileProblem.ESCAPES
        )
    if exc.errno == errno.ENXIO:  # O_WRONLY|O_NONBLOCK on a FIFO without a reader
        return SandboxFileError(f"{where} is a FIFO", path=where, problem=SandboxFileProblem.FIFO)
    return None


def _openat(dir_fd: int, name: str, flags: int, mode: int, where: str) -> int:
    """Open one relative path beneath ``dir_fd`` without following any symlink."""
    parts = [_check_component(p) for p in name.split("/")]
    try:
        if _openat2.available:
            try:
                return _openat2(dir_fd, name, flags, mode)
            except _FallbackError:
                pass
        current = dir_fd
        opened: list[int] = []
        try:
            for part in parts[:-1]:
                current = os.open(part, _DIR_FLAGS, dir_fd=current)
                opened.append(current)
            return os.open(parts[-1], flags, mode, dir_fd=current)
        finally:
            for fd in opened:
                os.close(fd)
    except OSError as exc:
        if exc.errno == errno.ENOTDIR and _has_link(dir_fd, parts):
            exc = OSError(errno.ELOOP, os.strerror(errno.ELOOP), name)
        refusal = _refusal(exc, where)
        if refusal is not None:
            raise refusal from exc
        raise


def _has_link(dir_fd: int, parts: list[str]) -> bool:
    """Whether a walk met a symlink (``O_DIRECTORY|O_NOFOLLOW`` reports one as ENOTDIR)."""
    current, opened = dir_fd, []
    try:
        for part in parts:
            try:
                st = os.stat(part, dir_fd=current, follow_symlinks=False)
            except OSError:
                return False
            if stat.S_ISLNK(st.st_mode):
                return True
            if not stat.S_ISDIR(st.st_mode):
                return False
            current = os.open(part, _DIR_FLAGS, dir_fd=current)
            opened.append(current)
        return False
    except OSError:
        return False
    finally:
        for fd in opened:
            os.close(fd)


def check_regular(fd: int, where: str, *, max_bytes: int) -> os.stat_result:
    """``fstat`` the descriptor: a regular file no larger than ``max_bytes``, or a refusal."""
    st = os.fstat(fd)
    mode = st.st_mode
    if not stat.S_ISREG(mode):
        problem = (
            SandboxFileProblem.FIFO
            if stat.S_ISFIFO(mode)
            else SandboxFileProblem.SOCKET
            if stat.S_ISSOCK(mode)
            else SandboxFileProblem.FOLDER
            if stat.S_ISDIR(mode)
            else SandboxFileProblem.DEVICE
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else SandboxFileProblem.SYMLINK
        )
        raise SandboxFileError(
            f"{where} is not a regular file ({problem.value})", path=where, problem=problem
        )
    if st.st_size > max_bytes:
        raise SandboxFileError(
            f"{where} is {st.st_size} bytes, over the limit of {max_bytes}",
            path=where,
            problem=SandboxFileProblem.TOO_LARGE,
        )
    return st


class ConfinedDir:
    """An open directory descriptor; every name below it is reached without resolving links.

    ``path`` is informational (messages, logs): nothing is ever opened by it after ``open``.
    """

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path
        self._prefix = str(path).rstrip("/")  # for names in messages: no Path per entry

    def _where(self, name: str) -> str:
        """``path / name`` as text, for messages."""
        return f"{self._prefix}/{name}"

    @classmethod
    def open(cls, root: Path, *parts: str, create: bool = False) -> ConfinedDir:
        """Open trusted ``root`` (a host-only folder), then each of ``parts`` beneath it.

        With ``create``, missing parts are made (mode 0755) as they are walked.
        """
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        here = cls(fd, root)
        try:
            for part in parts:
                child = here.subdir(part, create=create)
                here.close()
                here = child
        except BaseException:
            here.close()
            raise
        return here

    def subdir(self, name: str, *, create: bool = False) -> ConfinedDir:
        where = self._where(name)
        if create:
            try:
                os.mkdir(_check_component(name), DIR_MODE, dir_fd=self.fd)
            except FileExistsError:
                pass
        fd = _openat(self.fd, name, _DIR_FLAGS, 0, where)
        return ConfinedDir(fd, self.path / name)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> ConfinedDir:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def real_path(self) -> str:
        """Where the kernel says this descriptor's folder is (``/proc/self/fd``)."""
        return os.readlink(f"/proc/self/fd/{self.fd}")  # noqa: PTH115 - text wanted, no Path

    # -- reads --------------------------------------------------------------------------------
    @contextmanager
    def open_regular(
        self, name: str, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES
    ) -> Iterator[tuple[int, os.stat_result]]:
        """A read-only descriptor of a regular file beneath this folder, and its ``fstat``."""
        where = self._where(name)
        fd = _openat(self.fd, name, _READ_FLAGS, 0, where)
        try:
            st = check_regular(fd, where, max_bytes=max_bytes)
            yield fd, st
        finally:
            os.close(fd)

    def read_bytes(self, name: str, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes:
        """The content of a regular file, read through the descriptor that was checked."""
        with self.open_regular(name, max_bytes=max_bytes) as (fd, st):
            chunks: list[bytes] = []
            total = 0
            while True:
                chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
                if not chunk:
                    break
                total += len(chunk)
                if total > max_bytes:  # grew after the fstat
                    raise SandboxFileError(
                        f"{self._where(name)} grew past the limit of {max_bytes} bytes",
                        path=self._where(name),
                        problem=SandboxFileProblem.TOO_LARGE,
                    )
                chunks.append(chunk)
            del st
            return b"".join(chunks)

    def stat_regular(self, name: str) -> os.stat_result | None:
        """``lstat`` of a name (never followed): None when absent, a refusal unless regular."""
        where = self._where(name)
        try:
            st = os.stat(_check_component(name), dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(st.st_mode):
            raise SandboxFileError(
                f"{where} is a symbolic link", path=where, problem=SandboxFileProblem.SYMLINK
            )
        if not stat.S_ISREG(st.st_mode):
            raise SandboxFileError(
                f"{where} is not a regular file",
                path=where,
                problem=SandboxFileProblem.DEVICE
                if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                else SandboxFileProblem.FIFO
                if stat.S_ISFIFO(st.st_mode)
                else SandboxFileProblem.SOCKET
                if stat.S_ISSOCK(st.st_mode)
                else SandboxFileProblem.FOLDER,
            )
        return st

    # -- writes -------------------------------------------------------------------------------
    def create_exclusive(
        self, name: str, data: bytes, *, mode: int = FILE_MODE, durable: bool = False
    ) -> bool:
        """Create ``name`` with ``data``; False (nothing written) when any entry has that name.

        ``O_CREAT|O_EXCL`` never follows a symlink, dangling or not: a planted link is an
        existing entry, so root never creates a file where an agent points. ``durable``:
        ``fsync`` before returning.
        """
        where = self._where(name)
        try:
            fd = _openat(self.fd, name, _CREATE_FLAGS, mode, where)
        except FileExistsError:
            return False
        try:
            _write_all(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        return True

    def _synced_temporary(self, name: str, data: bytes, mode: int) -> str:
        """Write ``data`` to a fresh temporary name beside ``name`` and ``fsync`` it; its name."""
        _check_component(name)
        tmp = f".{name}.{secrets.token_hex(6)}.tmp"
        fd = _openat(self.fd, tmp, _CREATE_FLAGS, mode, self._where(tmp))
        try:
            _write_all(fd, data)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp, dir_fd=self.fd)
            raise
        os.close(fd)
        return tmp

    def create_whole(self, name: str, data: bytes, *, mode: int = FILE_MODE) -> bool:
        """Create ``name`` holding all of ``data`` or nothing; False when any entry has that name.

        Written and synced under a fresh temporary name, then hard-linked to ``name`` (which,
        unlike ``rename``, never replaces an entry, a planted link included): a reader or a
        crash never meets a partial file. Where the filesystem has no hard links it falls back
        to :meth:`create_exclusive` (durable, not whole).
        """
        tmp = self._synced_temporary(name, data, mode)
        try:
            os.link(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd, follow_symlinks=False)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            return self.create_exclusive(name, data, mode=mode, durable=True)
        finally:
            try:
                os.unlink(tmp, dir_fd=self.fd)
            except FileNotFoundError:
                pass
        return True

    def replace(self, name: str, data: bytes, *, mode: int = FILE_MODE) -> None:
        """Write a fresh temporary name, then rename it over ``name`` inside this descriptor.

        ``rename`` replaces whatever entry is there (a symlink included) and never follows it.
        """
        tmp = self._synced_temporary(name, data, mode)
        try:
            os.rename(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=self.fd)
            except FileNotFoundError:
                pass
            raise

    def remove_tree(self, name: str) -> None:
        """Delete a sub-folder (or file) beneath this descriptor; links are removed, not followed."""
        _check_component(name)
        try:
            st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            # shutil.rmtree with dir_fd walks by descriptors (its symlink-attack-safe variant).
            shutil.rmtree(name, dir_fd=self.fd)
        else:
            os.unlink(name, dir_fd=self.fd)

    def unlink(self, name: str) -> None:
        try:
            os.unlink(_check_component(name), dir_fd=self.fd)
        except FileNotFoundError:
            pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def read_file(root: Path, *parts: str, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes:
    """Read ``root/parts…`` where every part may be sandbox-controlled."""
    if not parts:
        raise ValueError("read_file needs at least one part below the trusted root")
    with ConfinedDir.open(root, *parts[:-1]) as folder:
        return folder.read_bytes(parts[-1], max_bytes=max_bytes)


def create_file(root: Path, *parts: str, data: bytes, make_dirs: bool = False) -> bool:
    """Create ``root/parts…`` exclusively (False when the name exists in any form)."""
    if not parts:
        raise ValueError("create_file needs at least one part below the trusted root")
    with ConfinedDir.open(root, *parts[:-1], create=make_dirs) as folder:
        return folder.create_exclusive(parts[-1], data)


def ensure_file(root: Path, *parts: str, data: bytes, make_dirs: bool = True) -> bool:
    """Create ``root/parts…`` unless it exists; an existing entry must be a regular file.

    True when created. The replacement for ``if not exists(): write_text()``, which follows a
    dangling symlink a sandbox planted: here a planted link is refused, nothing is written.
    """
    if not parts:
        raise ValueError("ensure_file needs at least one part below the trusted root")
    with ConfinedDir.open(root, *parts[:-1], create=make_dirs) as folder:
        if folder.create_exclusive(parts[-1], data):
            return True
        folder.stat_regular(parts[-1])
        return False


def replace_file(root: Path, *parts: str, data: bytes, make_dirs: bool = False) -> None:
    """Atomically replace ``root/parts…`` (temporary name + rename inside the folder's fd)."""
    if not parts:
        raise ValueError("replace_file needs at least one part below the trusted root")
    with ConfinedDir.open(root, *parts[:-1], create=make_dirs) as folder:
        folder.replace(parts[-1], data)


MAX_IDLE_OPEN_WORKERS = 4  # threads kept for deadline opens (starting one per open cost ~0.4 ms)


class _OpenWorker:
    """A daemon thread running deadline opens one at a time; ``None`` tells it to exit."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        threading.Thread(target=self._run, name="confined-open", daemon=True).start()

    def _run(self) -> None:
        while (job := self.jobs.get()) is not None:
            job()


_idle_workers: list[_OpenWorker] = []
_idle_workers_lock = threading.Lock()


def call_with_deadline(fn: Callable[[], T], *, deadline_s: float, what: str) -> T:
    """Run ``fn`` on a daemon worker thread and wait at most ``deadline_s`` for it.

    For opens that only SQLite can do (it opens by name, without ``O_NONBLOCK``): a FIFO
    swapped in after the probe would block its thread forever. The caller gets a
    :class:`SandboxFileError` at the deadline; the stuck worker holds nothing of the caller's,
    is never handed another open (it exits once its open returns) and the session is
    quarantined, so it cannot pile up threads. Workers that finished in time are reused.
    On the host the caller is a session-executor thread (``nanoclaw.executors``): the deadline
    frees that thread, so a hostile file never stalls the session pool.
    """
    box: dict[str, object] = {}
    # Held until the body ends: a bare lock is the cheapest one-shot signal between two
    # threads (an Event builds a Condition and a waiter lock on every wait).
    done = threading.Lock()
    done.acquire()

    def body() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc
        finally:
            done.release()

    with _idle_workers_lock:
        worker = _idle_workers.pop() if _idle_workers else None
    if worker is None:
        worker = _OpenWorker()
    worker.jobs.put(body)
    if not done.acquire(timeout=max(deadline_s, 0.0)):
        worker.jobs.put(None)  # abandoned: it exits after the stuck open, never reused
        raise SandboxFileError(
            f"opening {what} did not finish within {deadline_s:g} s",
            path=what,
            problem=SandboxFileProblem.TIMEOUT,
        )
    with _idle_workers_lock:
        keep = len(_idle_workers) < MAX_IDLE_OPEN_WORKERS
        if keep:
            _idle_workers.append(worker)
    if not keep:
        worker.jobs.put(None)
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]
