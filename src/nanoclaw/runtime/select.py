"""Pick the sandbox runtime: the setting, else the best one available here; per-group overrides.

``auto`` picks Docker when its daemon answers, else bubblewrap on Linux, else the ``process``
runtime only when explicitly allowed (tests, development), else stops with an error that says
how to install Docker. An agent group may name another runtime in its container config; the
``RuntimeRouter`` starts that group's runners there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from nanoclaw.errors import ConfigError
from nanoclaw.executors import BlockingExecutor
from nanoclaw.runtime.base import RunnerHandle, RunnerInfo, RunnerRuntime, RunSpec
from nanoclaw.runtime.process import ProcessRuntime
from nanoclaw.settings import Settings

RUNTIME_NAMES = ("docker", "bwrap", "process")
DOCKER_PROBE_TIMEOUT_S = 3

Probe = Callable[[], tuple[bool, str]]


@dataclass(frozen=True)
class RuntimeChoice:
    runtime: RunnerRuntime
    reason: str


def docker_answers() -> tuple[bool, str]:
    try:
        import docker

        client = docker.from_env(timeout=DOCKER_PROBE_TIMEOUT_S)
        try:
            client.ping()
            version = client.version().get("Version", "?")
        finally:
            client.close()
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return False, f"the Docker daemon does not answer ({first[:160]})"
    return True, f"the Docker daemon answers (Docker {version})"


def bwrap_probe() -> tuple[bool, str]:
    from nanoclaw.runtime.bwrap import bwrap_works

    return bwrap_works()


def make_runtime(name: str, settings: Settings, *, blocking: BlockingExecutor) -> RunnerRuntime:
    """Build one runtime by name (no probing: its ``check`` says whether it can start runners)."""
    if name == "process":
        return ProcessRuntime(
            python=settings.python_executable,
            enabled=settings.allow_process_runtime,
            blocking=blocking,
        )
    if name == "docker":
        from nanoclaw.runtime.docker import DockerLimits, DockerRuntime
        from nanoclaw.runtime.image import agent_image

        return DockerRuntime(
            image=agent_image(configured=settings.agent_image, base_image=settings.base_image),
            limits=DockerLimits(
                memory=settings.runner_memory,
                cpus=settings.runner_cpus,
                pids=settings.runner_pids_limit,
            ),
            runner_uid=settings.runner_uid,
            runner_gid=settings.runner_gid,
            blocking=blocking,
        )
    if name == "bwrap":
        from nanoclaw.runtime.bwrap import BwrapRuntime

        return BwrapRuntime(
            python=settings.python_executable,
            stage_root=settings.data_path / "runner-app",
            blocking=blocking,
            runner_uid=settings.runner_uid,
            runner_gid=settings.runner_gid,
        )
    raise ConfigError(f"unknown runtime {name!r} (choose one of {', '.join(RUNTIME_NAMES)})")


def choose_runtime_name(
    settings: Settings, *, docker_probe: Probe = docker_answers, bwrap_probe: Probe = bwrap_probe
) -> tuple[str, str]:
    """(runtime name, why) for these settings and this machine."""
    if settings.runtime != "auto":
        return settings.runtime, f"NANOCLAW_RUNTIME={settings.runtime}"
    docker_ok, docker_why = docker_probe()
    if docker_ok:
        return "docker", f"auto: {docker_why}"
    bwrap_ok, bwrap_why = bwrap_probe()
    if bwrap_ok:
        return "bwrap", f"auto: {docker_why}; {bwrap_why}"
    if settings.allow_process_runtime:
        return "process", (
            f"auto: {docker_why}; {bwrap_why}; "
            "the process runtime (no isolation) is explicitly allowed"
        )
    raise ConfigError(
        f"no sandbox runtime is available: {docker_why}; {bwrap_why}. Install Docker "
        "(https://docs.docker.com/engine/install/, or `apt-get install docker.io` and start "
        "dockerd),"
        " or bubblewrap on Linux (`apt-get install bubblewrap`); for development only, "
        "NANOCLAW_ALLOW_PROCESS_RUNTIME=1"
    )


def select_runtime(
    settings: Settings,
    *,
    blocking: BlockingExecutor,
    docker_probe: Probe = docker_answers,
    bwrap_probe: Probe = bwrap_probe,
) -> RuntimeChoice:
    name, reason = choose_runtime_name(settings, docker_probe=docker_probe, bwrap_probe=bwrap_probe)
    default = make_runtime(name, settings, blocking=blocking)
    return RuntimeChoice(
        RuntimeRouter(
            default=default, factory=lambda n: make_runtime(n, settings, blocking=blocking)
        ),
        reason,
    )


class RuntimeRouter(RunnerRuntime):
    """The default runtime, plus the runtimes agent groups ask for (``RunSpec.runtime``)."""

    def __init__(self, *, default: RunnerRuntime, factory: Callable[[str], RunnerRuntime]) -> None:
        self.default = default
        self.name = default.name
        self._factory = factory
        self._runtimes: dict[str, RunnerRuntime] = {default.name: default}
        self._owner: dict[str, RunnerRuntime] = {}

    def runtime_for(self, name: str | None) -> RunnerRuntime:
        if not name or name == self.default.name:
            return self.default
        if name not in RUNTIME_NAMES:
            raise ConfigError(f"unknown runtime {name!r} in the agent group's container config")
        if name not in self._runtimes:
            self._runtimes[name] = self._factory(name)
        return self._runtimes[name]

    async def check(self) -> None:
        await self.default.check()

    async def start(self, spec: RunSpec) -> RunnerHandle:
        runtime = self.runtime_for(spec.runtime)
        if runtime is not self.default:
            await runtime.check()
        return await runtime.start(spec)

    async def list_runners(self, *, install_id: str) -> list[RunnerInfo]:
        """Every runtime's runners; which runtime listed each is kept for :meth:`remove` until
        the next listing (only the reap removes, right after it lists), never longer: a runner
        that exited leaves no entry behind."""
        found: list[RunnerInfo] = []
        owner: dict[str, RunnerRuntime] = {}
        for runtime in list(self._runtimes.values()):
            for info in await runtime.list_runners(install_id=install_id):
                owner[info.runner_id] = runtime
                found.append(info)
        self._owner = owner
        return found

    async def remove(self, runner_id: str) -> None:
        runtime = self._owner.pop(runner_id, self.default)
        await runtime.remove(runner_id)
