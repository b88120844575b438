"""The ``process`` runtime: the runner as a plain subprocess on the host. Tests and development only.

It gives no isolation, so it refuses to start unless explicitly enabled
(``NANOCLAW_ALLOW_PROCESS_RUNTIME=1``). The child gets a scrubbed environment built from
scratch (invariant 5 holds here too: no credential is passed).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import time
from pathlib import Path

from nanoclaw.contract.runner_config import ENV_GLOBAL_DIR, ENV_GROUP_DIR, ENV_SESSION_DIR
from nanoclaw.cpu_affinity import children_unpinned
from nanoclaw.errors import RunnerError, RuntimeUnavailableError
from nanoclaw.executors import BlockingExecutor
from nanoclaw.runtime.base import (
    LOG_TAIL_LINES,
    RunnerExit,
    RunnerHandle,
    RunnerInfo,
    RunnerRuntime,
    RunSpec,
)

log = logging.getLogger("nanoclaw.runtime.process")

# The only host variables a runner subprocess inherits: enough to run Python, nothing secret.
PASSTHROUGH_ENV = ("PATH", "LANG", "LC_ALL", "PYTHONPATH", "VIRTUAL_ENV", "SYSTEMROOT")
# Marks a runner process as this install's (the process runtime's equivalent of a label), so
# a restarted host can find and stop runners its killed predecessor left running.
ENV_INSTALL_ID = "NANOCLAW_INSTALL_ID"
ENV_RUNNER_SESSION = "NANOCLAW_RUNNER_SESSION"
PROC = Path("/proc")
FOREIGN_KILL_WAIT_S = 5.0
KILL_WAIT_S = 10.0
_POLL_S = 0.05


def _environ(pid: int) -> dict[str, str]:
    raw = (PROC / str(pid) / "environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def _stat(pid: int) -> tuple[str, int]:
    """(state, parent pid) of a process, from /proc/<pid>/stat."""
    text = (PROC / str(pid) / "stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def _alive(pid: int) -> bool:
    try:
        state, _ = _stat(pid)
    except (OSError, ValueError, IndexError):
        return False
    return state not in ("Z", "X")


def find_foreign_runners(install_id: str, *, exclude: set[int]) -> dict[int, str]:
    """Live runner processes of this install not started by this host process: pid -> session.

    Linux only (reads /proc); elsewhere it finds none.
    """
    found: dict[int, str] = {}
    if not PROC.is_dir():
        return found
    me = os.getpid()
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid in exclude or pid == me:
            continue
        try:
            state, ppid = _stat(pid)
            if state in ("Z", "X") or ppid == me:
                continue
            env = _environ(pid)
        except (OSError, ValueError, IndexError):
            continue
        if env.get(ENV_INSTALL_ID) == install_id:
            found[pid] = env.get(ENV_RUNNER_SESSION, "")
    return found


class ProcessHandle(RunnerHandle):
    def __init__(self, *, spec: RunSpec, process: asyncio.subprocess.Process) -> None:
        self.session_id = spec.session_id
        self.runner_id = f"pid-{process.pid}"
        self.process = process
        self._tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self._reader = asyncio.create_task(self._read_stderr(), name=f"stderr-{self.runner_id}")
        self._exit: asyncio.Future[RunnerExit] | None = None

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        while True:
            line = await self.process.stderr.readline()
            if not line:
                return
            text = line.decode(errors="replace").rstrip()
            self._tail.append(text)
            log.debug("[%s] %s", self.session_id, text)

    async def wait(self) -> RunnerExit:
        if self._exit is None:
            self._exit = asyncio.ensure_future(self._wait())
        return await asyncio.shield(self._exit)

    async def _wait(self) -> RunnerExit:
        code = await self.process.wait()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._reader, timeout=1.0)
        return RunnerExit(exit_code=code, log_tail="\n".join(self._tail))

    def is_running(self) -> bool:
        return self.process.returncode is None

    async def stop(self, *, grace_s: float) -> None:
        if not self.is_running():
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), timeout=grace_s)
        except TimeoutError:
            log.warning("runner %s ignored SIGTERM for %.1f s; killing it", self.runner_id, grace_s)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            try:  # SIGKILL cannot be ignored; only an uninterruptible kernel wait delays it
                await asyncio.wait_for(self.process.wait(), timeout=KILL_WAIT_S)
            except TimeoutError:
                log.error(
                    "runner %s still not reaped %.0f s after SIGKILL", self.runner_id, KILL_WAIT_S
                )


class ProcessRuntime(RunnerRuntime):
    name = "process"

    def __init__(self, *, python: str, enabled: bool, blocking: BlockingExecutor) -> None:
        self.python = python
        self.blocking = blocking  # killing foreign runners
        self.enabled = enabled
        self._handles: dict[str, ProcessHandle] = {}
        self._foreign: dict[str, tuple[int, str]] = {}  # runner id -> (pid, install id)

    async def check(self) -> None:
        if not self.enabled:
            raise RuntimeUnavailableError(
                "the process runtime gives no isolation and is for tests and development only; "
                "set NANOCLAW_ALLOW_PROCESS_RUNTIME=1 to use it",
                runtime=self.name,
            )

    async def start(self, spec: RunSpec) -> RunnerHandle:
        await self.check()
        env = {k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ}
        env.update(spec.env)
        env.update(
            {
                ENV_SESSION_DIR: str(spec.session_dir),
                ENV_GROUP_DIR: str(spec.group_dir),
                ENV_GLOBAL_DIR: str(spec.global_dir),
                "HOME": str(spec.group_dir),
                "TZ": spec.timezone,
                "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONUNBUFFERED": "1",
                ENV_INSTALL_ID: spec.install_id,
                ENV_RUNNER_SESSION: spec.session_id,
            }
        )
        if spec.packages_dir is not None:  # after the runner's own path: never shadows it
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (env.get("PYTHONPATH"), str(spec.packages_dir)) if p
            )
        try:
            # The runner (and its tools) may use every CPU, not the host's pinned one.
            with children_unpinned():
                process = await asyncio.create_subprocess_exec(
                    self.python,
                    "-m",
                    "agent_runner",
                    cwd=str(spec.group_dir),
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                    start_new_session=True,
                )
        except OSError as exc:
            raise RunnerError(f"cannot start runner: {exc}", session_id=spec.session_id) from exc
        handle = ProcessHandle(spec=spec, process=process)
        self._handles[handle.runner_id] = handle
        return handle

    async def list_runners(self, *, install_id: str) -> list[RunnerInfo]:
        """Our own runners, plus live runners of this install left by a previous host process."""
        own = [
            RunnerInfo(h.runner_id, h.session_id, install_id, h.is_running())
            for h in self._handles.values()
        ]
        mine = {h.process.pid for h in self._handles.values()}
        foreign = find_foreign_runners(install_id, exclude=mine)
        for pid in foreign:
            self._foreign[f"pid-{pid}"] = (pid, install_id)
        return own + [
            RunnerInfo(f"pid-{pid}", session, install_id, True) for pid, session in foreign.items()
        ]

    async def remove(self, runner_id: str) -> None:
        handle = self._handles.pop(runner_id, None)
        if handle is not None:
            await handle.stop(grace_s=1.0)
            return
        known = self._foreign.pop(runner_id, None)
        if known is not None:
            await self.blocking.run(self._kill_foreign, *known)

    @staticmethod
    def _kill_foreign(pid: int, install_id: str) -> None:
        """Stop a runner we did not start (SIGTERM, then SIGKILL) and wait until it is gone."""
        for sig, wait_s in ((signal.SIGTERM, 1.0), (signal.SIGKILL, FOREIGN_KILL_WAIT_S)):
            try:
                if _environ(pid).get(ENV_INSTALL_ID) != install_id:
                    return  # the pid was reused by someone else: never touch it
                os.killpg(pid, sig)
            except (OSError, ValueError):
                return
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                if not _alive(pid):
                    log.info("stopped runner pid %d left by a previous host", pid)
                    return
                time.sleep(_POLL_S)
        log.warning("runner pid %d left by a previous host did not stop", pid)
