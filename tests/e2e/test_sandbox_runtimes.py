"""End to end per sandbox (real Docker daemon, real bubblewrap): answers, restarts, cap, orphans."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from nanoclaw.db.central import CentralDB
from nanoclaw.db.repository import Repository
from nanoclaw.host import Host, build_host
from nanoclaw.runtime.base import RunnerInfo
from tests.helpers import make_agent, say, texts, wire_chat

WAIT_S = 60.0
POLL_S = 0.05


async def live_runners(host: Host) -> list[RunnerInfo]:
    """Runners of this install as the runtime itself sees them (the daemon, for docker)."""
    found = await host.runtime.list_runners(install_id=host.settings.install_id)
    return [r for r in found if r.running]


async def until(predicate: Any, *, timeout_s: float = WAIT_S, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(POLL_S)
    raise AssertionError(f"timed out waiting for {what}")


async def kill_runner(host: Host, info: RunnerInfo, docker_client: Any | None) -> None:
    if info.runner_id.startswith("bwrap-"):
        os.killpg(int(info.runner_id.removeprefix("bwrap-")), signal.SIGKILL)
    else:
        assert docker_client is not None
        await asyncio.to_thread(docker_client.containers.get(info.runner_id).kill)


def docker_or_none(request: pytest.FixtureRequest, runtime_name: str) -> Any | None:
    return request.getfixturevalue("docker_client") if runtime_name == "docker" else None


async def test_a_message_is_answered_by_a_sandboxed_runner(
    sandbox_host: Host, runtime_name: str
) -> None:
    agent = make_agent(sandbox_host.repo, "Andy")
    wire_chat(sandbox_host.repo, agent, "local")
    exchange = await say(sandbox_host.settings.cli_socket, "hello sandbox", timeout=WAIT_S)
    assert texts(exchange) == ["Andy (mock model, no API key configured) heard: hello sandbox"]
    runners = await live_runners(sandbox_host)
    assert len(runners) == 1
    assert runners[0].runner_id.startswith("bwrap-") == (runtime_name == "bwrap")


async def test_a_runner_killed_mid_turn_answers_after_its_restart(
    sandbox_host: Host, runtime_name: str, request: pytest.FixtureRequest
) -> None:
    docker_client = docker_or_none(request, runtime_name)
    agent = make_agent(sandbox_host.repo, "Andy")
    wire_chat(sandbox_host.repo, agent, "local")
    pending = asyncio.create_task(say(sandbox_host.settings.cli_socket, "!sleep 2", timeout=WAIT_S))

    async def claimed() -> bool:
        sessions = await asyncio.to_thread(sandbox_host.repo.sessions)
        if not sessions:
            return False
        layout = sandbox_host.sessions.layout(sessions[0])
        try:
            acks = await asyncio.to_thread(sandbox_host.reader.acks, layout)
        except Exception:  # outbound.db not created by the runner yet
            return False
        return "processing" in acks.values()

    await until(claimed, what="the turn to be claimed")
    [first] = await live_runners(sandbox_host)
    await kill_runner(sandbox_host, first, docker_client)
    exchange = await pending
    assert texts(exchange) == ["Andy (mock model, no API key configured) heard: !sleep 2"]
    [second] = await live_runners(sandbox_host)
    assert second.runner_id != first.runner_id


async def test_three_sessions_with_a_cap_of_two_start_in_arrival_order(
    make_settings: Any,
) -> None:
    host = build_host(make_settings(max_concurrent_runners=2, idle_timeout_s=0.5))
    await host.start()
    try:
        agent = make_agent(host.repo, "Andy")
        for chat in ("a", "b", "c"):
            wire_chat(host.repo, agent, chat)
        peak = 0
        stop = asyncio.Event()

        async def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, len(await live_runners(host)))
                await asyncio.sleep(POLL_S)

        sampler = asyncio.create_task(sample())
        done_at: dict[str, float] = {}

        async def ask(chat: str) -> list[str]:
            exchange = await say(host.settings.cli_socket, "!sleep 1", chat=chat, timeout=WAIT_S)
            done_at[chat] = time.monotonic()
            return texts(exchange)

        tasks = []
        for chat in ("a", "b", "c"):
            tasks.append(asyncio.create_task(ask(chat)))
            await asyncio.sleep(0.3)  # a definite arrival order
        answers = await asyncio.gather(*tasks)
        stop.set()
        await sampler
    finally:
        await host.stop()
    assert all(a == ["Andy (mock model, no API key configured) heard: !sleep 1"] for a in answers)
    assert peak == 2
    assert done_at["c"] > min(done_at["a"], done_at["b"])


def _host_env(settings: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NANOCLAW_", "ANTHROPIC_"))}
    env.update(
        {
            "NANOCLAW_ENV_FILE": "",
            "NANOCLAW_DATA_DIR": str(settings.data_path),
            "NANOCLAW_GROUPS_DIR": str(settings.groups_path),
            "NANOCLAW_LOGS_DIR": str(settings.logs_path),
            "NANOCLAW_CLI_SOCKET_PATH": str(settings.cli_socket),
            "NANOCLAW_RUNTIME": settings.runtime,
            "NANOCLAW_INSTALL_NAME": settings.install_id,
            "NANOCLAW_TIMEZONE": "UTC",
            "NANOCLAW_MOUNT_ALLOWLIST_PATH": str(settings.mount_allowlist_path),
        }
    )
    if settings.agent_image:
        env["NANOCLAW_AGENT_IMAGE"] = settings.agent_image
    return env


def _runner_processes(marker: str) -> list[int]:
    """Host pids whose command line mentions ``marker`` (a session folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


async def test_an_orphan_left_by_a_killed_host_is_removed_at_the_next_start(
    make_settings: Any, runtime_name: str, tmp_path: Path
) -> None:
    settings = make_settings()
    db = CentralDB(path=settings.central_db_path, migrations_root=settings.migrations_path)
    db.migrate()
    repo = Repository(db)
    wire_chat(repo, make_agent(repo, "Andy"), "local")
    db.dispose()
    nanoclaw = str(Path(sys.executable).with_name("nanoclaw"))
    log = (tmp_path / "first-host.log").open("wb")
    first = await asyncio.create_subprocess_exec(
        nanoclaw, "run", env=_host_env(settings), stdout=log, stderr=log
    )
    try:

        async def host_up() -> bool:
            assert first.returncode is None, (tmp_path / "first-host.log").read_text()
            try:
                _, writer = await asyncio.open_unix_connection(str(settings.cli_socket))
            except OSError:
                return False
            writer.close()
            return True

        await until(host_up, what="the first host's CLI socket")
        exchange = await say(settings.cli_socket, "first host", timeout=WAIT_S)
        assert texts(exchange) == ["Andy (mock model, no API key configured) heard: first host"]
    finally:
        first.kill()  # SIGKILL: no clean-up of any kind
        await first.wait()
        log.close()
    settings.cli_socket.unlink(missing_ok=True)

    second = build_host(make_settings_like(settings))
    left = await second.runtime.list_runners(install_id=settings.install_id)
    if runtime_name == "docker":
        assert [r.running for r in left] == [True], "the killed host's container should survive it"
    else:  # --die-with-parent: the runner dies with its host
        sessions_dir = str(settings.sessions_path)
        await until(
            lambda: asyncio.sleep(0, result=not _runner_processes(sessions_dir)),
            timeout_s=5,
            what="the bwrap runner to die with its host",
        )
    await second.start()
    try:
        assert await live_runners(second) == []
        if runtime_name == "docker":
            gone = await second.runtime.list_runners(install_id=settings.install_id)
            assert not {r.runner_id for r in left} & {r.runner_id for r in gone}
        exchange = await say(settings.cli_socket, "second host", timeout=WAIT_S)
        assert texts(exchange) == ["Andy (mock model, no API key configured) heard: second host"]
    finally:
        await second.stop()


def make_settings_like(settings: Any) -> Any:
    """The same install in a fresh Settings object (as a restarted host would build it)."""
    return type(settings)(
        _env_file=None,
        **{name: getattr(settings, name) for name in type(settings).model_fields},
    )


@pytest.mark.parametrize(
    "runtime_name", [pytest.param("docker", marks=pytest.mark.docker)], indirect=True
)  # bwrap runners cannot outlive their host, so no install ever sees another's
async def test_another_installs_runners_are_never_reaped(
    make_settings: Any, tmp_path: Path, short_dir: Path
) -> None:
    ours = build_host(make_settings())
    theirs = build_host(
        make_settings(
            data_dir=tmp_path / "theirs",
            groups_dir=tmp_path / "theirs-groups",
            cli_socket_path=short_dir / "theirs.sock",
        )
    )
    await theirs.start()
    try:
        wire_chat(theirs.repo, make_agent(theirs.repo, "Bee"), "local")
        await say(theirs.settings.cli_socket, "hi", timeout=WAIT_S)
        before = await live_runners(theirs)
        await ours.start()
        await ours.stop()
        assert await live_runners(theirs) == before
    finally:
        await theirs.stop()
