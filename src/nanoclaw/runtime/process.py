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

from nanoclaw.contract.runner_config import ENV_GLOBAL_DIR, ENV_GROUP_DIR, ENV_SESSION_DIR
from nanoclaw.errors import RunnerError, RuntimeUnavailableError
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
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()


class ProcessRuntime(RunnerRuntime):
    name = "process"

    def __init__(self, *, python: str, enabled: bool) -> None:
        self.python = python
        self.enabled = enabled
        self._handles: dict[str, ProcessHandle] = {}

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
            }
        )
        try:
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
            raise RunnerError(
                f"cannot start runner: {exc}", session_id=spec.session_id
            ) from exc
        handle = ProcessHandle(spec=spec, process=process)
        self._handles[handle.runner_id] = handle
        return handle

    async def list_runners(self, *, install_id: str) -> list[RunnerInfo]:
        return [
            RunnerInfo(h.runner_id, h.session_id, install_id, h.is_running())
            for h in self._handles.values()
        ]

    async def remove(self, runner_id: str) -> None:
        handle = self._handles.pop(runner_id, None)
        if handle is not None:
            await handle.stop(grace_s=1.0)
