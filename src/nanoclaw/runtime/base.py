"""The runtime interface every sandbox implements (process, docker, bwrap).

A runtime starts one runner for a ``RunSpec`` and reports on it; it knows nothing of
routing or delivery. The supervisor (``runtime.supervisor``) owns the policy: at most one
runner per session, the concurrency cap, idle stops and exit bookkeeping.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

LOG_TAIL_LINES = 40


@dataclass(frozen=True)
class Mount:
    """A host directory made visible to the runner. Directories only, never single DB files."""

    source: Path
    target: str
    read_only: bool = True


@dataclass(frozen=True)
class RunSpec:
    """Everything a runtime needs to start the runner of one session."""

    session_id: str
    agent_group_id: str
    agent_folder: str
    session_dir: Path
    group_dir: Path
    global_dir: Path
    install_id: str
    timezone: str
    network: str = "none"  # "none" | "open"
    image: str | None = None
    extra_mounts: tuple[Mount, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)  # never a secret (invariant 5)
    # The credential proxy's socket folder on the host (mounted read-only) when the runner needs it.
    proxy_dir: Path | None = None
    # A per-agent-group runtime override ("docker", "bwrap", "process"); None = the default.
    runtime: str | None = None
    # The group's pip packages installed without Docker (``runtime.packages``), read-only on
    # the runner's PYTHONPATH; with Docker they are in the group's image layer instead.
    packages_dir: Path | None = None


@dataclass(frozen=True)
class RunnerExit:
    exit_code: int | None
    log_tail: str


@dataclass(frozen=True)
class RunnerInfo:
    """A runner as the runtime itself sees it (used for one-per-session and orphan reaping)."""

    runner_id: str
    session_id: str
    install_id: str
    running: bool


class RunnerHandle(abc.ABC):
    """A started runner."""

    session_id: str
    runner_id: str

    @abc.abstractmethod
    async def wait(self) -> RunnerExit:
        """Return once the runner has exited (may be awaited by several tasks)."""

    @abc.abstractmethod
    async def stop(self, *, grace_s: float) -> None:
        """Ask the runner to stop, then kill it after ``grace_s``. Idempotent."""

    @abc.abstractmethod
    def is_running(self) -> bool: ...


class RunnerRuntime(abc.ABC):
    """A sandbox technology. Blocking calls must run off the event loop."""

    name: str

    @abc.abstractmethod
    async def check(self) -> None:
        """Raise ``RuntimeUnavailableError`` when no runner can be started now."""

    @abc.abstractmethod
    async def start(self, spec: RunSpec) -> RunnerHandle:
        """Start the runner for ``spec``; raise ``RuntimeUnavailableError`` or ``RunnerError``."""

    @abc.abstractmethod
    async def list_runners(self, *, install_id: str) -> list[RunnerInfo]:
        """Runners of this install that the runtime knows about, running or not."""

    @abc.abstractmethod
    async def remove(self, runner_id: str) -> None:
        """Stop and remove a runner by id (orphan reaping). Idempotent."""
