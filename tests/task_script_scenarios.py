"""Task pre-check script scenarios, shared by the process-runtime tests and the sandboxed e2e tests.

Each scenario runs a real bash script in the runner's runtime, on the ``anthropic`` provider
against the fake Messages API, whose request count shows whether a model turn ran.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from typing import Any

from nanoclaw.db.models import AgentGroup, ContainerConfig
from nanoclaw.host import Host
from nanoclaw.scheduling.tasks import list_tasks
from nanoclaw.sessions.store import InboundMessage
from tests.fakes.anthropic_server import FakeAnthropic, reply
from tests.helpers import make_agent, wire_chat

FALSE_SCRIPT = "echo checking >&2; echo 'not the decision'; echo '{\"wakeAgent\": false}'"
TRUE_SCRIPT = 'echo \'{"wakeAgent": true, "data": {"new_mail": 3}}\''
FAILING_SCRIPT = "echo 'broken checker' >&2; exit 3"


def claude_agent(host: Host, name: str = "Andy") -> AgentGroup:
    agent = make_agent(host.repo, name)
    with host.db.session() as s:
        cfg = s.get(ContainerConfig, agent.id)
        assert cfg is not None
        cfg.provider = "anthropic"
        cfg.model = "claude-sonnet-4-5"
    wire_chat(host.repo, agent, "local")
    return agent


def task_row(host: Host, task_id: str, script: str, *, series: str | None = None) -> dict[str, Any]:
    for session in host.repo.sessions():
        layout = host.sessions.layout(session)
        conn = sqlite3.connect(f"file:{layout.inbound_db}?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        try:
            found = conn.execute("SELECT * FROM messages_in WHERE id = ?", (task_id,)).fetchone()
        finally:
            conn.close()
        if found is not None:
            return dict(found)
    raise AssertionError(f"no task {task_id}")


async def fire_task(
    host: Host, agent: AgentGroup, task_id: str, script: str, *, series: str | None = None
) -> dict[str, Any]:
    """Insert a due task with a script into the agent's chat session, wake it, await its record."""
    mg = host.repo.messaging_group("cli", "local")
    assert mg is not None
    session, layout = host.sessions.resolve(
        agent_group_id=agent.id, messaging_group_id=mg.id, thread_id=None, mode="shared"
    )
    host.sessions.store.insert_messages(
        layout,
        [
            InboundMessage(
                id=task_id,
                kind="task",
                content={"prompt": "summarise my inbox", "script": script},
                channel_type="cli",
                platform_id="local",
                series_id=series or task_id,
            )
        ],
    )
    await host.supervisor.wake(session.id)
    return await until_recorded(host, task_id)


async def until_recorded(host: Host, task_id: str, timeout_s: float = 90.0) -> dict[str, Any]:
    """The occurrence once the runner acked it and the host recorded its script run."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        row = task_row(host, task_id, "")
        content: dict[str, Any] = json.loads(row["content"])
        if row["status"] == "completed" and "script_run" in content:
            return content
        if loop.time() > deadline:
            raise AssertionError(f"task {task_id} not recorded: {row}")
        await asyncio.sleep(0.05)


async def scenario_false_skips_the_turn(host: Host, fake_api: FakeAnthropic) -> None:
    agent = claude_agent(host)
    content = await fire_task(host, agent, "task-quiet", FALSE_SCRIPT)
    assert content["script_run"]["outcome"] == "skipped"
    assert fake_api.requests == []  # no model turn ran
    (session,) = host.repo.sessions()
    assert list_tasks(host.sessions.store, host.sessions.layout(session)) == []


async def scenario_true_carries_the_data(host: Host, fake_api: FakeAnthropic) -> None:
    agent = claude_agent(host)
    fake_api.push(reply("You have 3 new mails."))
    content = await fire_task(host, agent, "task-mail", TRUE_SCRIPT)
    assert content["script_run"]["outcome"] == "woke"
    (request,) = await fake_api.wait_requests(1)
    prompt = request.all_text()
    assert "Script output:" in prompt and "{&quot;new_mail&quot;: 3}" in prompt
    assert "summarise my inbox" in prompt


async def scenario_failures_skip_and_the_third_tells_the_chat(
    host: Host, fake_api: FakeAnthropic
) -> list[str]:
    """Returns the reasons recorded; the caller checks the chat notice arrived."""
    agent = claude_agent(host)
    reasons = []
    for n in range(1, 4):
        content = await fire_task(host, agent, f"task-bad-{n}", FAILING_SCRIPT, series="task-bad")
        run = content["script_run"]
        assert run["outcome"] == "error" and run["failures_in_a_row"] == n
        reasons.append(str(run["reason"]))
    assert fake_api.requests == []
    return reasons
