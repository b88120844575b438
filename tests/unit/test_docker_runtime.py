"""DockerRuntime against a recording fake client: never pulls, one container per session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker.errors
import pytest

from nanoclaw.errors import ImageMissingError, RunnerError, RuntimeUnavailableError
from nanoclaw.runtime.docker import DockerLimits, DockerRuntime
from tests.helpers import shared_executors
from tests.unit.test_runtime_args import make_spec


class FakeContainer:
    def __init__(self, cid: str, status: str, labels: dict[str, str]) -> None:
        self.id = cid
        self.short_id = cid[:6]
        self.status = status
        self.labels = labels
        self.calls: list[str] = []

    def remove(self, force: bool = False) -> None:
        self.calls.append("remove")

    def start(self) -> None:
        self.calls.append("start")


class FakeClient:
    def __init__(self, *, images: set[str], existing: list[FakeContainer] | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.existing = existing or []
        outer = self

        class Images:
            def get(self, name: str) -> object:
                outer.calls.append(("images.get", name))
                if name not in images:
                    raise docker.errors.ImageNotFound(name)
                return object()

            def pull(self, *a: object, **kw: object) -> None:
                outer.calls.append(("images.pull", a))

        class Containers:
            def list(self, **kw: Any) -> list[FakeContainer]:
                outer.calls.append(("containers.list", kw))
                return list(outer.existing)

            def create(self, **kw: Any) -> FakeContainer:
                outer.calls.append(("containers.create", kw["name"]))
                return FakeContainer("new-container-id", "created", kw["labels"])

            def run(self, *a: object, **kw: object) -> None:
                outer.calls.append(("containers.run", a))

        class Api:
            def containers(self, **kw: Any) -> list[dict[str, Any]]:
                outer.calls.append(("api.containers", kw))
                return [{"Id": c.id, "State": c.status, "Labels": c.labels} for c in outer.existing]

            def remove_container(self, cid: str, force: bool = False) -> None:
                outer.calls.append(("api.remove_container", cid))

        self.images = Images()
        self.containers = Containers()
        self.api = Api()

    def ping(self) -> bool:
        self.calls.append(("ping", None))
        return True


def runtime(client: FakeClient, host_uid: int = 1234) -> DockerRuntime:
    return DockerRuntime(
        blocking=shared_executors().blocking,
        image="nanoclaw-agent:abc",
        limits=DockerLimits(),
        runner_uid=1000,
        runner_gid=1000,
        client_factory=lambda: client,
        host_uid=host_uid,
        host_gid=1234,
    )


async def test_a_missing_image_is_a_clear_error_and_never_pulled(tmp_path: Path) -> None:
    client = FakeClient(images=set())
    rt = runtime(client)
    with pytest.raises(ImageMissingError, match="nanoclaw image build"):
        await rt.check()
    with pytest.raises(ImageMissingError):
        await rt.start(make_spec(tmp_path))
    names = [name for name, _ in client.calls]
    assert "images.pull" not in names and "containers.run" not in names
    assert "containers.create" not in names


async def test_a_live_container_of_the_session_refuses_a_second(tmp_path: Path) -> None:
    live = FakeContainer("old", "running", {"nanoclaw.session": "sess-1"})
    client = FakeClient(images={"nanoclaw-agent:abc"}, existing=[live])
    with pytest.raises(RunnerError, match="already runs"):
        await runtime(client).start(make_spec(tmp_path))
    assert ("containers.create", "nanoclaw-abc123-sess-1") not in client.calls


async def test_a_dead_container_of_the_session_is_removed_first(tmp_path: Path) -> None:
    dead = FakeContainer("old", "exited", {"nanoclaw.session": "sess-1"})
    client = FakeClient(images={"nanoclaw-agent:abc"}, existing=[dead])
    handle = await runtime(client).start(make_spec(tmp_path))
    assert ("api.remove_container", "old") in client.calls
    assert handle.runner_id == "new-container-id"
    listed = next(kw for name, kw in client.calls if name == "api.containers")
    assert listed["filters"]["label"] == ["nanoclaw.install=abc123", "nanoclaw.session=sess-1"]


async def test_runners_are_listed_from_one_call_by_install_label() -> None:
    mine = FakeContainer("c1", "running", {"nanoclaw.install": "i1", "nanoclaw.session": "s1"})
    other = FakeContainer("c2", "running", {"nanoclaw.install": "i2", "nanoclaw.session": "s2"})
    client = FakeClient(images=set(), existing=[mine, other])
    found = await runtime(client).list_runners(install_id="i1")
    assert [(r.runner_id, r.session_id, r.running) for r in found] == [("c1", "s1", True)]


async def test_runners_use_the_hosts_uid_or_a_non_root_one_for_a_root_host() -> None:
    client = FakeClient(images=set())
    assert runtime(client, host_uid=1234).user == "1234:1234"
    assert runtime(client, host_uid=0).user == "1000:1000"


async def test_a_daemon_that_does_not_answer_is_unavailable_not_a_crash() -> None:
    def broken() -> Any:
        raise docker.errors.DockerException("connection refused")

    rt = DockerRuntime(
        blocking=shared_executors().blocking,
        image="x",
        limits=DockerLimits(),
        runner_uid=1000,
        runner_gid=1000,
        client_factory=broken,
    )
    with pytest.raises(RuntimeUnavailableError, match="install Docker"):
        await rt.check()
