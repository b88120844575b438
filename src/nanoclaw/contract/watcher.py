"""Wake on change of session DBs: inotify where it works, adaptive polling elsewhere.

Used by the runner (its ``inbound.db``) and by the host's delivery loop (every live
``outbound.db``). With inotify (Linux; also through Docker and bubblewrap bind mounts, which
share the host kernel's inodes) an idle watcher costs nothing until a file changes. Where a
directory cannot be watched (not Linux, a filesystem without inotify, the watch limit reached)
its files are polled by change counter (``dbwatch.change_signature``, which never blocks on a
FIFO): every ``fast_interval_s`` for ``fast_for_s`` after the last activity, then backing off
by doubling to ``slow_interval_s``. Spurious wakes are allowed; a missed change is not, so
callers keep their own safety-net poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

from nanoclaw.contract.dbwatch import change_signature
from nanoclaw.contract.inotify import (
    IN_DELETE,
    IN_IGNORED,
    IN_Q_OVERFLOW,
    Inotify,
    InotifyUnavailableError,
)

log = logging.getLogger("nanoclaw.watch")

FAST_POLL_FOR_S = 3.0
SLOW_POLL_INTERVAL_S = 1.0
JOURNAL_SUFFIX = "-journal"


class WatchMode(StrEnum):
    AUTO = "auto"  # inotify where it works, polling for the rest
    POLL = "poll"  # adaptive polling only


class ChangeWatcher:
    def __init__(
        self,
        *,
        fast_interval_s: float = 0.01,
        slow_interval_s: float = SLOW_POLL_INTERVAL_S,
        fast_for_s: float = FAST_POLL_FOR_S,
        mode: WatchMode = WatchMode.AUTO,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fast_interval_s = fast_interval_s
        self.slow_interval_s = max(slow_interval_s, fast_interval_s)
        self.fast_for_s = fast_for_s
        self.clock = clock
        self._paths: dict[str, Path] = {}
        self._polled: dict[str, tuple[int, int] | None] = {}  # key → last signature seen
        self._interval_s = fast_interval_s
        self._active_at = clock()
        self._next_poll = 0.0
        self._inotify: Inotify | None = None
        self._wds: dict[str, int] = {}  # directory → watch descriptor
        self._names: dict[int, dict[str, set[str]]] = {}  # wd → file name → keys
        # Each pending ``wait``'s wake-up: resolved by the fd reader when a watched file changed
        # (or what is polled did), by ``interrupt``, or by its own timer.
        self._waiters: set[asyncio.Future[None]] = set()
        self._interrupted = False
        # Keys seen changed by the fd reader since the last ``wait`` returned. The reader drains
        # the inotify fd each time it fires: the fd is level-triggered, and one left readable
        # while the owner is busy elsewhere would spin the event loop at full CPU. Events that
        # change nothing (a journal created: a write began) do not wake the waiting owner.
        self._seen: set[str] = set()
        self._polled_changed = False  # a watch was lost: what is polled changed under the wait
        self._reader_loop: asyncio.AbstractEventLoop | None = None
        if mode is WatchMode.AUTO:
            try:
                self._inotify = Inotify()
            except InotifyUnavailableError as exc:
                log.info("inotify unavailable (%s); polling for changes", exc)

    @property
    def uses_inotify(self) -> bool:
        return self._inotify is not None

    @property
    def inotify_fd(self) -> int | None:
        """The inotify descriptor the event loop reads (None when polling only)."""
        return None if self._inotify is None else self._inotify.fd

    @property
    def poll_interval_s(self) -> float:
        """The current polling interval (fast after activity, backing off to the slow one)."""
        return self._interval_s

    def polled_keys(self) -> set[str]:
        """Keys watched by polling (no inotify watch could be placed for them)."""
        return set(self._polled)

    def keys(self) -> set[str]:
        return set(self._paths)

    def __contains__(self, key: object) -> bool:
        return key in self._paths

    # -- what is watched ------------------------------------------------------------------------
    def watch(self, key: str, path: Path) -> None:
        if self._paths.get(key) == path:
            return
        self.unwatch(key)
        self._paths[key] = path
        if self._inotify is not None and self._add_inotify(key, path):
            return
        self._polled[key] = change_signature(path)

    def _add_inotify(self, key: str, path: Path) -> bool:
        assert self._inotify is not None
        folder = str(path.parent)
        wd = self._wds.get(folder)
        if wd is None:
            try:
                wd = self._inotify.add_dir(folder)
            except OSError as exc:
                log.debug("cannot watch %s (%s); polling it", folder, exc)
                return False
            self._wds[folder] = wd
        names = self._names.setdefault(wd, {})
        for name in (path.name, f"{path.name}{JOURNAL_SUFFIX}"):
            names.setdefault(name, set()).add(key)
        return True

    def unwatch(self, key: str) -> None:
        path = self._paths.pop(key, None)
        self._polled.pop(key, None)
        if path is None or self._inotify is None:
            return
        wd = self._wds.get(str(path.parent))
        if wd is None:
            return
        names = self._names.get(wd, {})
        for name in list(names):
            names[name].discard(key)
            if not names[name]:
                del names[name]
        if not names:
            self._names.pop(wd, None)
            del self._wds[str(path.parent)]
            self._inotify.remove(wd)

    # -- waiting ----------------------------------------------------------------------------------
    def note_activity(self) -> None:
        """Poll fast again (a message just arrived or was sent)."""
        self._active_at = self.clock()
        self._interval_s = self.fast_interval_s
        self._next_poll = 0.0

    def interrupt(self) -> None:
        """End the pending ``wait`` now (it returns what it has, maybe nothing), or the next one."""
        self._interrupted = True
        self._wake()

    async def wait(self, timeout_s: float) -> set[str]:
        """Wait up to ``timeout_s`` for a change; return the keys that may have changed.

        An ``interrupt`` ends it early, with the changes seen so far (usually none).
        """
        self._attach_reader()
        deadline = self.clock() + max(0.0, timeout_s)
        while True:
            changed = self._drain_events() | self._poll_due()
            if changed:
                self.note_activity()
            if changed or self._interrupted:
                self._interrupted = False
                return changed
            now = self.clock()
            if now >= deadline:
                return set()
            until = deadline - now
            if self._polled:
                until = min(until, max(0.0, self._next_poll - now))
            await self._sleep(until)

    async def _sleep(self, seconds: float) -> None:
        """Until the fd reader sees a change, an ``interrupt``, or ``seconds`` pass."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(seconds, _resolve, waiter)
        self._waiters.add(waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiters.discard(waiter)

    def _wake(self) -> None:
        for waiter in self._waiters:
            _resolve(waiter)

    def _attach_reader(self) -> None:
        if self._inotify is None or self._reader_loop is not None:
            return
        self._reader_loop = asyncio.get_running_loop()
        self._reader_loop.add_reader(self._inotify.fd, self._on_readable)

    def _on_readable(self) -> None:
        self._seen |= self._read_events()
        if self._seen or self._polled_changed:
            self._polled_changed = False
            self._wake()

    def _drain_events(self) -> set[str]:
        changed, self._seen = self._seen | self._read_events(), set()
        return changed

    def _read_events(self) -> set[str]:
        if self._inotify is None:
            return set()
        changed: set[str] = set()
        for event in self._inotify.read():
            if event.mask & IN_Q_OVERFLOW:
                changed |= set(self._paths)  # events were lost: anything may have changed
                continue
            if event.mask & IN_IGNORED:  # the directory went away: poll what was in it
                self._forget_wd(event.wd)
                self._polled_changed = True
                continue
            if event.name.endswith(JOURNAL_SUFFIX) and not event.mask & IN_DELETE:
                continue  # a journal created (a write began) is not a commit; its deletion is
            changed |= self._names.get(event.wd, {}).get(event.name, set())
        return changed

    def _forget_wd(self, wd: int) -> None:
        names = self._names.pop(wd, {})
        for folder, known in list(self._wds.items()):
            if known == wd:
                del self._wds[folder]
        for keys in names.values():
            for key in keys:
                if key in self._paths:
                    self._polled[key] = None  # compared afresh at the next poll

    def _poll_due(self) -> set[str]:
        if not self._polled:
            return set()
        now = self.clock()
        if now < self._next_poll:
            return set()
        changed = set()
        for key, last in list(self._polled.items()):
            signature = change_signature(self._paths[key])
            if signature != last:
                self._polled[key] = signature
                changed.add(key)
        if now - self._active_at >= self.fast_for_s:
            self._interval_s = min(self.slow_interval_s, self._interval_s * 2)
        self._next_poll = now + self._interval_s
        return changed

    def close(self) -> None:
        if self._inotify is None:
            return
        if self._reader_loop is not None and not self._reader_loop.is_closed():
            with contextlib.suppress(Exception):
                self._reader_loop.remove_reader(self._inotify.fd)
        self._inotify.close()
        self._inotify = None


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
