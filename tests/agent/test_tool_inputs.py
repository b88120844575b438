"""Tool inputs through the real SDK, host and runner: the API is sent the schemas generated from the
input models, and a bad input comes back to the model as an error naming the field, writing no row."""

from __future__ import annotations

from agent_runner.tools.nanoclaw import nanoclaw_tools
from agent_runner.tools.schema import ModelTool, tool_schema

from nanoclaw.host import Host
from tests.agent.conftest import claude_agent, make_owner, outbound_query, session_layout
from tests.fakes.anthropic_server import FakeAnthropic, reply, tool_call
from tests.helpers import say, texts


async def test_the_api_is_sent_the_schemas_generated_from_the_input_models(
    agent_host: Host, fake_api: FakeAnthropic
) -> None:
    claude_agent(agent_host)
    fake_api.push(reply("hello"))
    await say(agent_host.settings.cli_socket, "hi")
    (request,) = fake_api.requests
    sent = {t["name"]: t for t in request.body["tools"]}
    models = [t for t in nanoclaw_tools() if isinstance(t, ModelTool)]
    assert len(models) == len(nanoclaw_tools())
    for tool in models:
        entry = sent[tool.name]
        assert entry["description"] == tool.description
        assert entry["input_schema"] == tool_schema(tool.input_model), tool.name
    assert sent["create_agent"]["input_schema"]["properties"]["name"]["maxLength"] == 64


async def test_a_bad_input_is_an_error_naming_the_field_and_writes_no_row(
    agent_host: Host, fake_api: FakeAnthropic
) -> None:
    agent = claude_agent(agent_host)
    make_owner(agent_host)  # create_agent would run at once for alice: only its input stops it
    fake_api.push(
        tool_call("send_message", {"text": "   "}),
        tool_call("create_agent", {"name": "R" * 65}),
        tool_call("edit_message", {"message_id": "1", "text": "x"}),
        tool_call("schedule_task", {"prompt": "p", "process_after": "soon", "every": "day"}),
        tool_call("str_replace_based_edit_tool", {"command": "undo_edit", "path": "f.txt"}),
        reply("gave up"),
    )
    exchange = await say(agent_host.settings.cli_socket, "try things")
    assert texts(exchange) == ["gave up"]
    results = [fake_api.requests[i].tool_results()[0] for i in range(1, 6)]
    assert all(r["is_error"] is True for r in results), results
    send, create, edit, schedule, editor = (r["content"] for r in results)
    assert send == "invalid input for send_message: 'text' must not be blank"
    assert create == (
        "invalid input for create_agent: 'name': String should have at most 64 characters"
    )
    assert edit == "invalid input for edit_message: 'message_id': Input should be a valid integer"
    assert schedule.startswith("invalid input for schedule_task: 'every' is not an input")
    assert editor.startswith("invalid input for str_replace_based_edit_tool: 'command': ")
    rows = outbound_query(
        session_layout(agent_host, agent), "SELECT kind, content FROM messages_out ORDER BY seq"
    )
    assert [kind for kind, _ in rows] == ["chat"]  # the final reply; no system row, no message
    assert "gave up" in rows[0][1]
    assert [g.name for g in agent_host.repo.agent_groups()] == [agent.name]
