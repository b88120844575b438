"""The tool loop against the fake Messages API, through the real SDK, host and runner."""

from __future__ import annotations

import json

from nanoclaw.host import Host
from tests.agent.conftest import (
    FAKE_API_KEY,
    claude_agent,
    inbound_rows,
    outbound_query,
    session_layout,
)
from tests.fakes.anthropic_server import FakeAnthropic, error, reply, tool_call
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


async def test_prompt_caching_and_the_tool_list(agent_host: Host, fake_api: FakeAnthropic) -> None:
    claude_agent(agent_host, web_tools=True)
    fake_api.push(reply("a"), reply("b"))
    await say(agent_host.settings.cli_socket, "one")
    await say(agent_host.settings.cli_socket, "two")
    first, second = fake_api.requests
    assert first.body["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert first.body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert first.body["cache_control"] == {"type": "ephemeral"}  # the conversation's breakpoint
    assert {
        "bash",
        "str_replace_based_edit_tool",
        "send_message",
        "schedule_task",
        "create_agent",
        "web_search",
        "web_fetch",
    } <= set(first.tool_names)
    types = {t.get("type") for t in first.body["tools"]}
    assert {"bash_20250124", "text_editor_20250728", "web_search_20250305"} <= types
    # Byte-stable across turns, so the cache holds.
    assert json.dumps(first.body["tools"]) == json.dumps(second.body["tools"])
    assert first.body["system"] == second.body["system"]


async def test_pause_turn_is_sent_back_and_max_tokens_continues(
    agent_host: Host, fake_api: FakeAnthropic
) -> None:
    claude_agent(agent_host)
    server_call = {
        "type": "server_tool_use",
        "id": "srvtoolu_1",
        "name": "web_search",
        "input": {"query": "moon"},
    }
    fake_api.push(
        reply("Searching. ", server_call, stop_reason="pause_turn"),
        reply("The moon is 384,400 km", stop_reason="max_tokens"),
        reply(" away.", stop_reason="end_turn"),
    )
    exchange = await say(agent_host.settings.cli_socket, "how far is the moon?")
    assert texts(exchange) == ["The moon is 384,400 km away."]
    _, resumed, continued = fake_api.requests
    assert resumed.messages[-1]["role"] == "assistant"  # pause_turn: the same conversation again
    assert resumed.messages[-1]["content"][1]["type"] == "server_tool_use"
    assert "cut off at the output limit" in continued.messages[-1]["content"][0]["text"]


async def test_iteration_cap_forces_an_answer(agent_host: Host, fake_api: FakeAnthropic) -> None:
    claude_agent(agent_host, max_tool_iterations=2)
    fake_api.push(
        tool_call("bash", {"command": "true"}),
        tool_call("bash", {"command": "true"}),
        reply("stopping here"),
    )
    exchange = await say(agent_host.settings.cli_socket, "loop forever")
    assert texts(exchange) == ["stopping here"]
    last = fake_api.requests[-1]
    assert last.body["tool_choice"] == {"type": "none"}
    assert "Tool step limit reached" in last.all_text()
    assert "tool_choice" not in fake_api.requests[1].body


async def test_bash_timeout_and_output_cap(agent_host: Host, fake_api: FakeAnthropic) -> None:
    agent = claude_agent(agent_host)
    group_dir = agent_host.settings.groups_path / agent.folder
    group_dir.mkdir(parents=True, exist_ok=True)
    (group_dir / "big.sh").write_text("head -c 200000 /dev/zero | tr '\\0' 'x'\n")
    fake_api.push(
        tool_call("bash", {"command": "bash big.sh"}),
        tool_call("bash", {"command": "cd /tmp && exit 3"}),
        reply("ok"),
    )
    await say(agent_host.settings.cli_socket, "run it")
    big = fake_api.requests[1].tool_results()[0]["content"]
    assert len(big) < 31_000 and "omitted" in big
    failed = fake_api.requests[2].tool_results()[0]
    assert failed["is_error"] is True and "[exit code 3]" in failed["content"]


async def test_refusal_is_answered_and_not_kept(agent_host: Host, fake_api: FakeAnthropic) -> None:
    claude_agent(agent_host)
    fake_api.push(reply(stop_reason="refusal"), reply("fine"))
    exchange = await say(agent_host.settings.cli_socket, "something bad")
    assert texts(exchange) == ["I can't help with that request."]
    await say(agent_host.settings.cli_socket, "something else")
    assert "something bad" not in fake_api.requests[1].all_text()


async def test_rate_limit_is_retried_by_the_sdk(agent_host: Host, fake_api: FakeAnthropic) -> None:
    claude_agent(agent_host)
    fake_api.push(error(429, "slow down"), error(529, "overloaded"), reply("made it"))
    exchange = await say(agent_host.settings.cli_socket, "hi")
    assert texts(exchange) == ["made it"]
    assert len(fake_api.requests) == 3


async def test_server_errors_end_in_an_error_reply_and_a_failed_ack(
    agent_host: Host, fake_api: FakeAnthropic
) -> None:
    agent = claude_agent(agent_host)
    fake_api.push(error(500), error(500), error(500), reply("later"))
    exchange = await say(agent_host.settings.cli_socket, "hi")
    assert texts(exchange) == ["Error: the model API failed with status 500"]
    assert len(fake_api.requests) == 3  # one call and the SDK's two retries
    layout = session_layout(agent_host, agent)
    (user_row,) = inbound_rows(layout, "kind = 'chat'")
    acks = dict(outbound_query(layout, "SELECT message_id, status FROM processing_ack"))
    assert acks[user_row["id"]] == "failed"
    # The failed turn is not in the transcript: the next turn starts clean.
    await say(agent_host.settings.cli_socket, "again")
    assert [m["role"] for m in fake_api.requests[-1].messages] == ["user"]


async def test_a_non_retryable_error_is_not_retried(
    agent_host: Host, fake_api: FakeAnthropic
) -> None:
    claude_agent(agent_host)
    fake_api.push(error(400, "bad request"))
    exchange = await say(agent_host.settings.cli_socket, "hi")
    assert texts(exchange) == ["Error: the model API failed with status 400"]
    assert len(fake_api.requests) == 1
