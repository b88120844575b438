"""Runner liveness as one enum; ``Supervisor.liveness`` (its runner table) is the one source."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum


class RunnerLiveness(StrEnum):
    """Whether a session's runner is alive, as this host's supervisor knows it.

    ``RUNNING`` and ``STOPPED`` are also the values the supervisor publishes in
    ``sessions.runner_status`` for readers in other processes (``nanoclaw status``).
    """

    STOPPED = "stopped"
    STARTING = "starting"  # a start is under way (the runtime has not handed back a handle)
    RUNNING = "running"  # a handle whose process or container has not exited

    @property
    def alive(self) -> bool:
        return self is not RunnerLiveness.STOPPED


LivenessOf = Callable[[str], RunnerLiveness]
