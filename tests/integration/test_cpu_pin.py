"""The host's Python threads share one CPU; blocking threads, runners and their children get all."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from nanoclaw import cpu_affinity
from nanoclaw.executors import BlockingExecutor, SessionExecutor
from nanoclaw.settings import Settings
from tests.crash.harness import HostProcess, Observers, send_until_accepted
from tests.helpers import allowed_cpus, install_with_chats

WAIT_S = 30.0  # a deadline for a state, never a pause
ALL_CPUS = frozenset(os.sched_getaffinity(0))
MULTI_CPU = len(ALL_CPUS) >= 2
CHATS = ["c0", "c1", "c2"]


def _thread_names(pid: int) -> dict[int, str]:
    return {
        int(t.name): (t / "comm").read_text().strip() for t in Path(f"/proc/{pid}/task").iterdir()
    }


def _child_cpus() -> frozenset[int]:
    out = subprocess.run(
        [sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return frozenset(int(c) for c in out.strip("[]\n").split(", "))


def test_a_pinned_thread_passes_its_pin_on_but_not_to_blocking_threads_or_children(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cpu_affinity, "_pin", None)  # whatever happens here is undone
    seen: dict[str, object] = {}

    def host_thread() -> None:  # plays `nanoclaw run`'s loop thread; pytest's stays unpinned
        pin = cpu_affinity.pin_host_threads(enabled=True)
        seen["pin"] = pin
        seen["self"] = frozenset(os.sched_getaffinity(0))
        lanes, blocking = SessionExecutor(workers=1), BlockingExecutor(workers=1)

        async def probe() -> None:
            with cpu_affinity.children_unpinned():  # as while a runner spawn is awaited
                # The lane's first thread starts here, from the widened loop thread.
                seen["lane"] = await lanes.run("s", lambda: frozenset(os.sched_getaffinity(0)))
            seen["blocking"] = await blocking.run(lambda: frozenset(os.sched_getaffinity(0)))
            seen["blocking child"] = await blocking.run(_child_cpus)

        try:
            asyncio.run(probe())
        finally:
            lanes.close()
            blocking.close()
        seen["child"] = _child_cpus()
        with cpu_affinity.children_unpinned():
            seen["unpinned child"] = _child_cpus()
        seen["after"] = frozenset(os.sched_getaffinity(0))

    thread = threading.Thread(target=host_thread)
    thread.start()
    thread.join(WAIT_S)
    assert not thread.is_alive()
    if not MULTI_CPU:  # nothing to share: no pin, every set is the one CPU
        assert seen["pin"] is None
        return
    pinned = frozenset({max(ALL_CPUS)})
    assert seen["pin"] == cpu_affinity.HostPin(cpu=max(ALL_CPUS), started_with=ALL_CPUS)
    assert seen["self"] == pinned
    assert seen["lane"] == pinned  # a lane thread pins itself, whoever started it
    assert seen["blocking"] == ALL_CPUS
    assert seen["blocking child"] == ALL_CPUS
    assert seen["child"] == pinned  # a plain spawn from a pinned thread inherits the pin ...
    assert seen["unpinned child"] == ALL_CPUS  # ... which is why runners spawn inside this
    assert seen["after"] == pinned
    assert frozenset(os.sched_getaffinity(0)) == ALL_CPUS  # pytest's own thread: untouched


def test_overlapping_spawns_on_the_loop_leave_it_pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_affinity, "_pin", None)
    seen: list[frozenset[int]] = []

    def host_thread() -> None:
        cpu_affinity.pin_host_threads(enabled=True)
        first_in, second_in, first_out = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def first() -> None:  # enters first, leaves first (as runner spawns overlap)
            with cpu_affinity.children_unpinned():
                first_in.set()
                await second_in.wait()
            seen.append(frozenset(os.sched_getaffinity(0)))
            first_out.set()

        async def second() -> None:  # enters while the first is open, leaves after it
            await first_in.wait()
            with cpu_affinity.children_unpinned():
                second_in.set()
                await first_out.wait()
                seen.append(frozenset(os.sched_getaffinity(0)))

        async def both() -> None:
            await asyncio.gather(first(), second())

        asyncio.run(both())
        seen.append(frozenset(os.sched_getaffinity(0)))

    thread = threading.Thread(target=host_thread)
    thread.start()
    thread.join(WAIT_S)
    assert not thread.is_alive()
    if not MULTI_CPU:
        assert seen == [ALL_CPUS] * 3
        return
    pinned = frozenset({max(ALL_CPUS)})
    # Widened while either block is open; pinned again once both have closed (restoring the
    # set each block found would leave the loop unpinned: the second found it widened).
    assert seen == [ALL_CPUS, ALL_CPUS, pinned]


def test_switched_off_nothing_is_pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_affinity, "_pin", None)
    result: list[object] = []

    def host_thread() -> None:
        result.append(cpu_affinity.pin_host_threads(enabled=False))
        result.append(frozenset(os.sched_getaffinity(0)))
        with cpu_affinity.children_unpinned():
            result.append(_child_cpus())

    thread = threading.Thread(target=host_thread)
    thread.start()
    thread.join(WAIT_S)
    assert not thread.is_alive()
    assert result == [None, ALL_CPUS, ALL_CPUS]


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("pin", ["1", "0"])
async def test_a_real_host_pins_its_threads_and_not_its_runner(
    settings: Settings, tmp_path: Path, pin: str
) -> None:
    install_with_chats(settings, CHATS)  # several: their runners are spawned concurrently
    host = HostProcess(settings, log_dir=tmp_path, NANOCLAW_HOST_CPU_PIN=pin)
    observers = Observers(settings.cli_socket, CHATS)
    host.start()
    observers.start()
    try:
        await observers.all_ready(within_s=WAIT_S)
        await asyncio.gather(
            *(
                send_until_accepted(
                    settings.cli_socket, chat=chat, message_id=f"m-{chat}", text="hi"
                )
                for chat in CHATS
            )
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_S
        while not all(observers.replies[chat] for chat in CHATS):
            assert loop.time() < deadline, host.logs()
            await asyncio.sleep(0.05)
        assert host.proc is not None
        host_pid = host.proc.pid
        runners = host.runner_pids()
        assert len(runners) == len(CHATS), host.logs()
        expect_host = frozenset({max(ALL_CPUS)}) if pin == "1" and MULTI_CPU else ALL_CPUS
        assert allowed_cpus(host_pid) == expect_host  # the event loop's thread
        names = _thread_names(host_pid)
        for tid, name in names.items():
            want = ALL_CPUS if name.startswith("nc-blocking") else expect_host
            if name.startswith(("nc-session", "nc-central", "nc-blocking")):
                assert allowed_cpus(host_pid, tid) == want, (name, host.logs())
        for runner in runners:
            assert allowed_cpus(runner) == ALL_CPUS
    finally:
        await observers.close()
        host.stop()
