"""Fixtures for end-to-end tests against a real Docker daemon and real bubblewrap.

Outside CI (``CI`` unset) the tests skip when Docker or bubblewrap is unavailable; in CI they
fail instead, because ``nanoclaw.sh test`` installs both and starts ``dockerd``.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from pydantic import SecretStr

from nanoclaw.host import Host, build_host
from nanoclaw.settings import Settings
from tests.conftest import REPO_ROOT
from tests.fakes.anthropic_server import FakeAnthropic

log = logging.getLogger("tests.e2e")
IN_CI = bool(os.environ.get("CI"))
KEY = "sk-ant-e2e-not-a-real-key"


def unavailable(reason: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"{reason} — CI must provide it (scripts/test-prereqs.sh)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    try:
        import docker

        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as exc:
        unavailable(f"no Docker daemon answers: {exc}")
    yield client
    client.close()


@pytest.fixture(scope="session")
def agent_image(docker_client: Any) -> str:
    """The content-tagged agent image of this checkout, built once if missing (cached after)."""
    from nanoclaw.runtime.image import ImageBuilder

    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    builder = ImageBuilder(
        client=docker_client,
        wheelhouse=REPO_ROOT / ".wheelhouse",
        base_image=defaults.base_image,
        debian_mirror=defaults.debian_mirror,
        progress=lambda line: log.info("image: %s", line),
    )
    return builder.build().image


@pytest.fixture(scope="session")
def bwrap_ready() -> None:
    from nanoclaw.runtime.bwrap import bwrap_works

    ok, why = bwrap_works()
    if not ok:
        unavailable(why)


@pytest.fixture(
    params=[
        pytest.param("docker", marks=pytest.mark.docker),
        pytest.param("bwrap", marks=pytest.mark.bwrap),
    ]
)
def runtime_name(request: pytest.FixtureRequest) -> str:
    if request.param == "docker":
        request.getfixturevalue("agent_image")
    else:
        request.getfixturevalue("bwrap_ready")
    return str(request.param)


def sandbox_settings_for(
    runtime: str, tmp_path: Path, socket_dir: Path, image: str | None, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "root": REPO_ROOT,
        "data_dir": tmp_path / "data",
        "groups_dir": tmp_path / "groups",
        "logs_dir": tmp_path / "logs",
        "cli_socket_path": socket_dir / "cli.sock",
        "runtime": runtime,
        "allow_process_runtime": False,
        "timezone": "UTC",
        "idle_timeout_s": 300,
        "install_name": f"e2e-{secrets.token_hex(4)}",
        "agent_image": image,
        "retry_backoff_base_s": 0.2,
        "mount_allowlist_path": tmp_path / "no-allowlist.json",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def make_settings(
    runtime_name: str, tmp_path: Path, short_dir: Path, request: pytest.FixtureRequest
) -> Iterator[Any]:
    """Sandbox settings for this test's runtime; its install's containers are removed after."""
    made: list[Settings] = []

    def make(**overrides: Any) -> Settings:
        image = request.getfixturevalue("agent_image") if runtime_name == "docker" else None
        s = sandbox_settings_for(runtime_name, tmp_path, short_dir, image, **overrides)
        made.append(s)
        return s

    yield make
    if runtime_name == "docker":
        client = request.getfixturevalue("docker_client")
        for s in made:
            for c in client.containers.list(
                all=True, filters={"label": f"nanoclaw.install={s.install_id}"}
            ):
                c.remove(force=True)


@pytest.fixture
async def sandbox_host(make_settings: Any) -> AsyncIterator[Any]:
    from nanoclaw.host import build_host

    host = build_host(make_settings())
    await host.start()
    try:
        yield host
    finally:
        await host.stop()


@pytest.fixture
async def proxied_host(make_settings: Any, fake_api: FakeAnthropic) -> AsyncIterator[Host]:
    """A started host whose runners reach the fake model through the credential proxy."""
    settings = make_settings(anthropic_api_key=SecretStr(KEY), anthropic_base_url=fake_api.base_url)
    host = build_host(settings)
    await host.start()
    try:
        yield host
    finally:
        await host.stop()
