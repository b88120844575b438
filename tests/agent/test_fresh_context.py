"""A task with context_mode "isolated" (v1's default) runs in a fresh context and leaves the chat's alone."""

from __future__ import annotations

from nanoclaw.contract.timeutil import now_iso
from nanoclaw.host import Host
from nanoclaw.sessions.store import InboundMessage
from tests.agent.conftest import claude_agent, eventually, session_layout
from tests.fakes.anthropic_server import FakeAnthropic, reply
from tests.helpers import say, texts


def _roles(request: object) -> list[str]:
    return [m["role"] for m in request.messages]  # type: ignore[attr-defined]


async def test_an_isolated_task_neither_sees_nor_extends_the_conversation(
    agent_host: Host, fake_api: FakeAnthropic
) -> None:
    agent = claude_agent(agent_host)
    fake_api.push(reply("Noted: 4711."), reply("Stretch now!"), reply("The code was 4711."))
    assert texts(await say(agent_host.settings.cli_socket, "remember the code 4711")) == [
        "Noted: 4711."
    ]
    layout = session_layout(agent_host, agent)
    task = InboundMessage(
        id="task-stretch",
        kind="task",
        content={"prompt": "Remind everyone to stretch", "context_mode": "isolated"},
        channel_type="cli",
        platform_id="local",
        process_after=now_iso(),
    )
    agent_host.sessions.store.insert_messages(layout, [task])
    await eventually(lambda: len(fake_api.requests) >= 2, timeout_s=20)
    isolated = fake_api.requests[1]
    assert _roles(isolated) == ["user"]  # no earlier turn in its context
    assert "4711" not in isolated.all_text() and "stretch" in isolated.all_text()

    answer = texts(await say(agent_host.settings.cli_socket, "what was the code?"))
    # The task's own reply may be waiting for the chat's next client; the answer comes last.
    assert answer[-1] == "The code was 4711."
    follow_up = fake_api.requests[2]
    # The chat's conversation goes on as if the task never ran in it.
    assert _roles(follow_up) == ["user", "assistant", "user"]
    assert "4711" in follow_up.all_text() and "stretch" not in follow_up.all_text().lower()
