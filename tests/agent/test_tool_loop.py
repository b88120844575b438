"""The tool loop against the fake Messages API, through the real SDK, host and runner."""

from __future__ import annotations

from nanoclaw.host import Host
from tests.agent.conftest import FAKE_API_KEY, claude_agent
from tests.fakes.anthropic_server import FakeAnthropic, reply, tool_call
from tests.helpers import say, texts


async def test_plain_reply_streams_through_the_sdk(
    agent_host: Host, fake_api: FakeAnthropic
) -> None:
    claude_agent(agent_host)
    fake_api.push(reply("Hello from Claude"))
    exchange = await say(agent_host.settings.cli_socket, "hi")
    assert texts(exchange) == ["Hello from Claude"]
    (request,) = fake_api.requests
    assert request.body["stream"] is True
    assert request.body["model"] == "claude-sonnet-4-5"
    assert "hi" in request.all_text()
    # The runner holds only a proxy token; the host's credential proxy put the real key in.
    assert request.headers["x-api-key"] == FAKE_API_KEY


async def test_multi_step_tool_loop(agent_host: Host, fake_api: FakeAnthropic) -> None:
    claude_agent(agent_host)
    fake_api.push(
        tool_call("bash", {"command": "echo step-one > f.txt && cat f.txt"}),
        tool_call("str_replace_based_edit_tool", {"command": "view", "path": "f.txt"}),
        reply("done"),
    )
    exchange = await say(agent_host.settings.cli_socket, "work")
    assert texts(exchange) == ["done"]
    _, second, third = fake_api.requests
    assert second.tool_results()[0]["content"] == "step-one"
    assert "step-one" in third.tool_results()[0]["content"]
