"""Task pre-check scripts (upstream §5 step 5): bash in the sandbox decides whether a task wakes the agent.

The script runs with ``bash -c`` in the group folder, in its own process group, for at most
``SCRIPT_TIMEOUT_S`` (then the group is killed); stdout is capped at ``SCRIPT_MAX_OUTPUT_BYTES``
(more is a failure, as upstream's ``maxBuffer``); stderr goes to the runner's log. The last
non-empty stdout line must be a JSON object ``{"wakeAgent": bool, "data": …}``. Anything else —
a non-zero exit, a timeout, too much output, a line that is not that object — is a failure:
the turn is skipped and the reason is reported to the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("agent_runner.task_script")

SCRIPT_TIMEOUT_S = 30.0
SCRIPT_MAX_OUTPUT_BYTES = 1024 * 1024
STDERR_LOGGED_BYTES = 16 * 1024
READ_CHUNK_BYTES = 65_536
MAX_REASON_CHARS = 300


@dataclass(frozen=True)
class ScriptOutcome:
    wake: bool
    data: Any = None
    error: str | None = None  # set when the script failed or printed no valid decision

    @property
    def outcome(self) -> str:
        """``woke``, ``skipped`` (wakeAgent false) or ``error``."""
        if self.error is not None:
            return "error"
        return "woke" if self.wake else "skipped"


def parse_decision(stdout: str) -> ScriptOutcome:
    """The decision in the last non-empty stdout line."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        return ScriptOutcome(False, error='the script printed nothing (expected {"wakeAgent": …})')
    last = lines[-1].strip()
    try:
        value = json.loads(last)
    except ValueError:
        return ScriptOutcome(False, error=f"the last output line is not JSON: {last[:120]!r}")
    if not isinstance(value, dict) or not isinstance(value.get("wakeAgent"), bool):
        return ScriptOutcome(
            False, error=f'the last output line lacks a boolean "wakeAgent": {last[:120]!r}'
        )
    return ScriptOutcome(value["wakeAgent"], value.get("data"))


async def run_task_script(
    script: str,
    *,
    cwd: Path,
    touch: Callable[[], None] = lambda: None,
    timeout_s: float = SCRIPT_TIMEOUT_S,
    max_output_bytes: int = SCRIPT_MAX_OUTPUT_BYTES,
) -> ScriptOutcome:
    """Run one task script and read its decision; never raises for the script's own faults."""
    try:
        process = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            script,
            cwd=str(cwd),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        return ScriptOutcome(False, error=f"cannot start bash: {exc}")
    stdout = bytearray()
    stderr = bytearray()
    overflow = False

    async def read_stdout() -> None:
        nonlocal overflow
        assert process.stdout is not None
        while chunk := await process.stdout.read(READ_CHUNK_BYTES):
            touch()
            stdout.extend(chunk)
            if len(stdout) > max_output_bytes:
                overflow = True
                _kill(process)
                return

    async def read_stderr() -> None:
        assert process.stderr is not None
        while chunk := await process.stderr.read(READ_CHUNK_BYTES):
            room = STDERR_LOGGED_BYTES - len(stderr)
            if room > 0:
                stderr.extend(chunk[:room])

    timed_out = False
    try:
        await asyncio.wait_for(
            asyncio.gather(read_stdout(), read_stderr(), process.wait()), timeout=timeout_s
        )
    except TimeoutError:
        timed_out = True
        _kill(process)
        await process.wait()
    if stderr:
        log.info("task script stderr:\n%s", stderr.decode(errors="replace").rstrip())
    if timed_out:
        return ScriptOutcome(False, error=f"the script timed out after {timeout_s:g} s")
    if overflow:
        return ScriptOutcome(False, error=f"the script printed more than {max_output_bytes} bytes")
    if process.returncode:
        tail = stderr.decode(errors="replace").strip().splitlines()
        why = f": {tail[-1][:MAX_REASON_CHARS]}" if tail else ""
        return ScriptOutcome(False, error=f"the script exited with code {process.returncode}{why}")
    return parse_decision(stdout.decode(errors="replace"))


def _kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
