"""Runner liveness has one source: the sweep, status and the cap eviction agree on it after a
runner crashes and after the sweep kills a runner whose heartbeat went stale.

A real host (process runtime); runners are killed with real signals.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from nanoclaw.admin.service import Actor
from nanoclaw.host import Host, build_host
from nanoclaw.runtime.liveness import RunnerLiveness
from nanoclaw.settings import Settings
from nanoclaw.sweep import ops
from nanoclaw.sweep.loop import SweepReport
from tests.channel_helpers import until
from tests.crash.harness import send_until_accepted
from tests.helpers import make_agent, say, texts, wire_chat

pytestmark = pytest.mark.timeout(90)


@dataclass(frozen=True)
class Views:
    """What each reader says about one session's runner."""

    supervisor: RunnerLiveness
    status: str  # the host's status table (``AdminService.sessions``)
    published: str  # ``sessions.runner_status``, for ``nanoclaw status`` in another process
    evictable: bool  # among the runners a waiting session may displace


@pytest.fixture
async def host(settings: Settings) -> AsyncIterator[Host]:
    settings.sweep_interval_s = 0.25
    settings.stuck_claim_tolerance_s = 1.0
    settings.runner_stop_grace_s = 0.5
    # A killed turn is retried only after a minute: its runner stays stopped for the test.
    settings.retry_backoff_base_s = 60.0
    settings.max_tries = 3
    host = build_host(settings)
    await host.start()
    try:
        yield host
    finally:
        await asyncio.wait_for(host.stop(), timeout=30)


def _views(host: Host, session_id: str) -> Views:
    (row,) = [
        r for r in host.permissions.admin.sessions(Actor.operator()).rows if r["id"] == session_id
    ]
    return Views(
        supervisor=host.supervisor.liveness(session_id),
        status=str(row["runner"]),
        published=host.repo.session(session_id).runner_status,
        evictable=session_id in host.supervisor.eviction_candidates(),
    )


async def _next_sweep(host: Host) -> SweepReport:
    """A sweep pass that started after this call (the second report from now)."""
    for _ in range(2):
        before = host.sweep.last_report

        def passed(b: SweepReport | None = before) -> bool:
            return host.sweep.last_report is not b

        await until(passed, "a sweep pass", within_s=10)
    report = host.sweep.last_report
    assert report is not None
    return report


async def _warm_session(host: Host) -> str:
    agent = make_agent(host.repo, "Andy")
    wire_chat(host.repo, agent, "local")
    assert texts(await say(host.settings.cli_socket, "hello"))
    (session,) = host.repo.sessions()
    return session.id


ALIVE = Views(RunnerLiveness.RUNNING, "running", "running", evictable=True)
DEAD = Views(RunnerLiveness.STOPPED, "stopped", "stopped", evictable=False)


async def test_sweep_status_and_eviction_agree_after_a_runner_crash(host: Host) -> None:
    session_id = await _warm_session(host)
    assert _views(host, session_id) == ALIVE
    assert session_id in (await _next_sweep(host)).live
    layout = host.sessions.layout(host.repo.session(session_id))
    state = host.reader.runner_state(layout)
    assert state is not None and state.pid

    os.kill(state.pid, signal.SIGKILL)  # between turns: nothing is claimed, nothing re-wakes it
    await until(
        lambda: host.supervisor.liveness(session_id) is RunnerLiveness.STOPPED,
        "the exit",
        within_s=10,
    )
    await until(
        lambda: host.repo.session(session_id).runner_status == "stopped", "publish", within_s=10
    )
    assert _views(host, session_id) == DEAD
    assert session_id not in (await _next_sweep(host)).live
    assert _views(host, session_id) == DEAD


async def test_sweep_status_and_eviction_agree_after_a_stale_heartbeat_kill(host: Host) -> None:
    session_id = await _warm_session(host)
    layout = host.sessions.layout(host.repo.session(session_id))
    agent_id = host.repo.session(session_id).agent_group_id
    message_id = f"cli:local:hang1:{agent_id}"
    # The runner blocks in this turn: its heartbeat stops while the claim is held.
    await send_until_accepted(
        host.settings.cli_socket, chat="local", message_id="hang1", text="!sleep 60"
    )

    def claimed() -> bool:
        claim = ops.read_claims(host.store, layout).get(message_id)
        return claim is not None and claim.status == "processing"

    await until(claimed, "the turn to claim the message", within_s=10)
    assert _views(host, session_id) == ALIVE

    def killed() -> bool:
        report = host.sweep.last_report
        return report is not None and session_id in report.killed

    await until(killed, "the sweep to kill the stale runner", within_s=15)
    report = host.sweep.last_report
    assert report is not None and session_id in report.live  # it was alive when judged
    assert "no heartbeat" in report.killed[session_id]
    await until(
        lambda: host.supervisor.liveness(session_id) is RunnerLiveness.STOPPED,
        "the exit",
        within_s=10,
    )
    await until(
        lambda: host.repo.session(session_id).runner_status == "stopped", "publish", within_s=10
    )
    assert _views(host, session_id) == DEAD
    assert session_id not in (await _next_sweep(host)).live
    assert not claimed()  # the exit handler reset the claim for a later retry
    assert _views(host, session_id) == DEAD
