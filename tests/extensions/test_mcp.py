"""MCP servers per agent: the no-secrets rule, names within 64 characters, a real stdio server in the tool loop."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nanoclaw.admin.extensions import Extensions
from nanoclaw.admin.service import Actor
from nanoclaw.cli.app import app
from nanoclaw.contract.mcp import McpConfigError, looks_secret, tool_name, validate_server
from nanoclaw.errors import PermissionDeniedError, ValidationError
from nanoclaw.host import Host
from nanoclaw.settings import Settings
from tests.agent.conftest import claude_agent, eventually, outbound_query, session_layout
from tests.fakes.anthropic_server import FakeAnthropic, reply, tool_call
from tests.helpers import say, texts

ECHO_SERVER = Path(__file__).resolve().parents[1] / "fixtures" / "mcp" / "echo_server.py"
OPERATOR = Actor.operator()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("API_KEY", "abc"),
        ("GITHUB_TOKEN", "x"),
        ("PLAIN", "sk-ant-api03-abcdefghijklmnop"),
        ("PLAIN", "xoxb-123-456"),
        ("PLAIN", "Zm9vYmFyYmF6cXV4cXV1eDEyMzQ1Njc4OTBhYmNkZWY="),
    ],
)
def test_a_secret_looking_env_value_is_refused(key: str, value: str) -> None:
    assert looks_secret(key, value)
    with pytest.raises(McpConfigError, match="secret"):
        validate_server("cal", "python", [], {key: value})


@pytest.mark.parametrize(
    ("key", "value"), [("LOG_LEVEL", "debug"), ("ROOT", "/workspace/agent/notes")]
)
def test_plain_settings_are_accepted(key: str, value: str) -> None:
    assert not looks_secret(key, value)
    assert validate_server("notes", "python", ["-m", "x"], {key: value}).env == {key: value}


def test_tool_names_are_namespaced_and_fit_the_64_character_limit() -> None:
    assert tool_name("echo", "add") == "mcp__echo__add"
    long = tool_name(
        "a-very-long-server-name-here", "and_an_even_longer_tool_name_that_goes_on_and_on"
    )
    assert len(long) == 64 and long.startswith("mcp__a-very-long-server-name-here__")
    assert long != tool_name(
        "a-very-long-server-name-here", "and_an_even_longer_tool_name_that_goes_on_and_ox"
    )
    assert tool_name("x", "weird name/ü") == "mcp__x__weird_name__"


def test_the_cli_adds_lists_and_removes_and_refuses_a_secret(
    settings: Settings, cli: CliRunner
) -> None:
    runner = cli
    assert runner.invoke(app, ["agents", "create", "Andy"]).exit_code == 0
    bad = runner.invoke(
        app, ["agents", "mcp", "add", "Andy", "cal", "npx", "--env", "CAL_TOKEN=abc"]
    )
    assert bad.exit_code == 2 and "secret" in bad.output
    ok = runner.invoke(
        app,
        [
            "agents",
            "mcp",
            "add",
            "Andy",
            "echo",
            sys.executable,
            "--env",
            "LEVEL=1",
            "--",
            str(ECHO_SERVER),
        ],
    )
    assert ok.exit_code == 0, ok.output
    listed = json.loads(runner.invoke(app, ["agents", "mcp", "list", "Andy", "--json"]).output)
    assert listed == [
        {"name": "echo", "command": sys.executable, "args": [str(ECHO_SERVER)], "env": ["LEVEL"]}
    ]
    assert runner.invoke(app, ["agents", "mcp", "remove", "Andy", "echo"]).exit_code == 0
    assert json.loads(runner.invoke(app, ["agents", "mcp", "list", "Andy", "--json"]).output) == []


async def test_the_agent_calls_a_real_stdio_server_and_a_broken_one_does_not_stop_the_turn(
    agent_host: Host, fake_api: FakeAnthropic
) -> None:
    agent = claude_agent(agent_host)
    extensions = Extensions(repo=agent_host.repo, groups_path=agent_host.settings.groups_path)
    extensions.add_mcp_server(
        OPERATOR, agent, name="echo", command=sys.executable, args=[str(ECHO_SERVER)]
    )
    extensions.add_mcp_server(OPERATOR, agent, name="broken", command="/nonexistent/mcp-server")
    fake_api.push(
        tool_call("mcp__echo__add", {"a": 2, "b": 40}),
        tool_call("mcp__echo__flood", {"n": 100_000}),
        reply("The answer is 42."),
    )
    exchange = await say(agent_host.settings.cli_socket, "what is 2 + 40?", timeout=60)
    assert texts(exchange) == ["The answer is 42."]
    first = fake_api.requests[0]
    assert {"mcp__echo__add", "mcp__echo__shout", "mcp__echo__flood"} <= set(first.tool_names)
    assert not any(n.startswith("mcp__broken__") for n in first.tool_names)
    assert "broken: failed" in first.system_text  # the agent is told
    (added,) = fake_api.requests[1].tool_results()
    assert added["content"] == "42" and added["is_error"] is False
    (flood,) = fake_api.requests[2].tool_results()
    assert len(flood["content"]) < 25_000 and "characters omitted" in flood["content"]
    layout = session_layout(agent_host, agent)
    ((status,),) = await eventually(
        lambda: outbound_query(layout, "SELECT value FROM session_state WHERE key='mcp_status'")
    )
    state = json.loads(status)
    assert state["echo"] == "ok: 4 tools" and state["broken"].startswith("failed: ")


def test_the_extensions_service_refuses_a_non_admin(settings: Settings) -> None:
    from nanoclaw.db.central import CentralDB
    from nanoclaw.db.repository import Repository
    from tests.helpers import make_agent

    db = CentralDB(path=settings.central_db_path, migrations_root=settings.migrations_path)
    db.migrate()
    try:
        repo = Repository(db)
        agent = make_agent(repo, "Andy")
        stranger = Actor.user(repo.upsert_user("cli:eve", kind="cli", display_name=None))
        with pytest.raises(PermissionDeniedError, match="permission denied"):
            Extensions(repo=repo, groups_path=settings.groups_path).add_mcp_server(
                stranger, agent, name="echo", command="python"
            )
        with pytest.raises(ValidationError):
            Extensions(repo=repo, groups_path=settings.groups_path).add_mcp_server(
                OPERATOR, agent, name="Bad Name", command="python"
            )
    finally:
        db.dispose()
