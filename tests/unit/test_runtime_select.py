"""Runtime selection (auto: docker, bwrap, allowed process, else error); per-group routing."""

from __future__ import annotations

from pathlib import Path

import pytest

from nanoclaw.errors import ConfigError
from nanoclaw.runtime.base import RunnerExit, RunnerHandle, RunnerInfo, RunnerRuntime, RunSpec
from nanoclaw.runtime.image import content_tag
from nanoclaw.runtime.select import RuntimeRouter, choose_runtime_name, select_runtime
from nanoclaw.settings import Settings
from tests.helpers import shared_executors

UP = (True, "up")
DOWN = (False, "down")


def choose(settings: Settings, docker: tuple[bool, str], bwrap: tuple[bool, str]) -> str:
    name, _ = choose_runtime_name(settings, docker_probe=lambda: docker, bwrap_probe=lambda: bwrap)
    return name


def auto(settings: Settings, **kw: object) -> Settings:
    return settings.model_copy(update={"runtime": "auto", **kw})


def test_auto_prefers_docker_then_bwrap(settings: Settings) -> None:
    s = auto(settings, allow_process_runtime=False)
    assert choose(s, UP, UP) == "docker"
    assert choose(s, DOWN, UP) == "bwrap"


def test_process_only_when_explicitly_allowed(settings: Settings) -> None:
    assert choose(auto(settings, allow_process_runtime=True), DOWN, DOWN) == "process"
    with pytest.raises(ConfigError, match=r"Install Docker .*docs\.docker\.com"):
        choose(auto(settings, allow_process_runtime=False), DOWN, DOWN)


def test_an_explicit_setting_wins_and_says_so(settings: Settings) -> None:
    s = settings.model_copy(update={"runtime": "bwrap"})
    name, reason = choose_runtime_name(s, docker_probe=lambda: UP, bwrap_probe=lambda: DOWN)
    assert (name, reason) == ("bwrap", "NANOCLAW_RUNTIME=bwrap")


def test_select_builds_the_chosen_runtime(settings: Settings) -> None:
    choice = select_runtime(
        auto(settings),
        blocking=shared_executors().blocking,
        docker_probe=lambda: UP,
        bwrap_probe=lambda: UP,
    )
    assert choice.runtime.name == "docker"
    assert choice.reason == "auto: up"


def test_the_image_tag_follows_content_and_base() -> None:
    one = content_tag(base_image="python:3.11-slim-bookworm")
    assert one == content_tag(base_image="python:3.11-slim-bookworm")
    assert one.startswith("nanoclaw-agent:") and len(one.split(":")[1]) == 12
    assert one != content_tag(base_image="debian:bookworm")


def test_the_image_tag_changes_when_a_runner_source_changes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from nanoclaw.runtime import image

    source = tmp_path / "poll.py"
    source.write_text("v1")
    monkeypatch.setattr(image, "runner_sources", lambda: [(source, "agent_runner/poll.py")])
    before = image.content_tag(base_image="b")
    source.write_text("v2")
    assert image.content_tag(base_image="b") != before


class FakeHandle(RunnerHandle):
    def __init__(self, spec: RunSpec, runner_id: str) -> None:
        self.session_id = spec.session_id
        self.runner_id = runner_id

    async def wait(self) -> RunnerExit:
        return RunnerExit(0, "")

    async def stop(self, *, grace_s: float) -> None:
        return None

    def is_running(self) -> bool:
        return True


class FakeRuntime(RunnerRuntime):
    def __init__(self, name: str) -> None:
        self.name = name
        self.started: list[str] = []
        self.removed: list[str] = []
        self.checked = 0

    async def check(self) -> None:
        self.checked += 1

    async def start(self, spec: RunSpec) -> RunnerHandle:
        self.started.append(spec.session_id)
        return FakeHandle(spec, f"{self.name}-{spec.session_id}")

    async def list_runners(self, *, install_id: str) -> list[RunnerInfo]:
        return [RunnerInfo(f"{self.name}-{s}", s, install_id, True) for s in self.started]

    async def remove(self, runner_id: str) -> None:
        self.removed.append(runner_id)


async def test_the_router_starts_each_group_on_its_runtime(tmp_path: Path) -> None:
    made: dict[str, FakeRuntime] = {}

    def factory(name: str) -> FakeRuntime:
        made[name] = FakeRuntime(name)
        return made[name]

    docker = FakeRuntime("docker")
    router = RuntimeRouter(default=docker, factory=factory)
    base = {
        "agent_group_id": "ag",
        "agent_folder": "f",
        "session_dir": tmp_path,
        "group_dir": tmp_path,
        "global_dir": tmp_path,
        "install_id": "i",
        "timezone": "UTC",
    }
    await router.start(RunSpec(session_id="a", **base))  # type: ignore[arg-type]
    await router.start(RunSpec(session_id="b", runtime="bwrap", **base))  # type: ignore[arg-type]
    assert docker.started == ["a"] and made["bwrap"].started == ["b"]
    assert made["bwrap"].checked == 1
    assert router.name == "docker"
    runners = await router.list_runners(install_id="i")
    assert {r.runner_id for r in runners} == {"docker-a", "bwrap-b"}
    await router.remove("bwrap-b")
    assert made["bwrap"].removed == ["bwrap-b"] and docker.removed == []
    # Runners that exited leave nothing behind once the next listing no longer shows them.
    for runtime in (docker, made["bwrap"]):
        runtime.started.clear()
    assert await router.list_runners(install_id="i") == []
    assert router._owner == {}
    with pytest.raises(ConfigError):
        await router.start(RunSpec(session_id="c", runtime="vm", **base))  # type: ignore[arg-type]
