"""Pick the sandbox runtime: explicit setting, else the best one available here."""

from __future__ import annotations

from dataclasses import dataclass

from nanoclaw.errors import ConfigError
from nanoclaw.runtime.base import RunnerRuntime
from nanoclaw.runtime.process import ProcessRuntime
from nanoclaw.settings import Settings


@dataclass(frozen=True)
class RuntimeChoice:
    runtime: RunnerRuntime
    reason: str


def select_runtime(settings: Settings) -> RuntimeChoice:
    process = ProcessRuntime(
        python=settings.python_executable, enabled=settings.allow_process_runtime
    )
    if settings.runtime == "process":
        return RuntimeChoice(process, "NANOCLAW_RUNTIME=process")
    if settings.runtime in ("docker", "bwrap"):
        raise ConfigError(f"the {settings.runtime} runtime is not available in this build")
    if settings.allow_process_runtime:
        return RuntimeChoice(
            process, "no sandbox runtime available; the process runtime is explicitly allowed"
        )
    raise ConfigError(
        "no sandbox runtime is available: install Docker (https://docs.docker.com/engine/install/)"
        " or, for development only, set NANOCLAW_ALLOW_PROCESS_RUNTIME=1"
    )
