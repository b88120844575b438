"""Per sandbox: with the host's threads pinned to one CPU, its sandboxed runner gets them all."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nanoclaw import cpu_affinity
from nanoclaw.host import build_host
from tests.helpers import allowed_cpus, make_agent, say, texts, wire_chat

WAIT_S = 60.0
ALL_CPUS = frozenset(os.sched_getaffinity(0))


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # ended meanwhile
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


@pytest.fixture
def pinned_test_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[cpu_affinity.HostPin | None]:
    """This test's thread plays `nanoclaw run`'s loop thread; pytest gets its CPUs back after."""
    monkeypatch.setattr(cpu_affinity, "_pin", None)
    before = os.sched_getaffinity(0)
    try:
        yield cpu_affinity.pin_host_threads(enabled=True)
    finally:
        os.sched_setaffinity(0, before)


async def test_the_sandboxed_runner_uses_every_cpu(
    pinned_test_thread: cpu_affinity.HostPin | None,
    make_settings: Any,
    runtime_name: str,
    request: pytest.FixtureRequest,
) -> None:
    if len(ALL_CPUS) >= 2:
        assert pinned_test_thread is not None
        assert frozenset(os.sched_getaffinity(0)) == {pinned_test_thread.cpu}
    host = build_host(make_settings())
    await host.start()
    try:
        agent = make_agent(host.repo, "Andy")
        wire_chat(host.repo, agent, "local")
        exchange = await say(host.settings.cli_socket, "which cpus", timeout=WAIT_S)
        assert texts(exchange), exchange
        (runner,) = [
            r
            for r in await host.runtime.list_runners(install_id=host.settings.install_id)
            if r.running
        ]
        if runtime_name == "bwrap":
            root = int(runner.runner_id.removeprefix("bwrap-"))
        else:
            client = request.getfixturevalue("docker_client")
            root = int(client.containers.get(runner.runner_id).attrs["State"]["Pid"])
        # bwrap, its sandboxed init and the runner beneath; or the container's processes.
        processes = {pid: allowed_cpus(pid) for pid in _descendants(root)}
        if runtime_name == "bwrap":
            assert len(processes) >= 2, processes
        assert all(cpus == ALL_CPUS for cpus in processes.values()), processes
    finally:
        await host.stop()
