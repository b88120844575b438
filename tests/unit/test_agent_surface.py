"""What the agent is promised exists: every gated action and every runner tool's host action has a
handler on a real host, the docs list every tool, and a later action answers honestly."""

from __future__ import annotations

import re

import pytest
from agent_runner.tools.base import FunctionTool
from agent_runner.tools.nanoclaw import nanoclaw_tools
from agent_runner.tools.sandbox import BashTool, TextEditorTool, web_server_tools

from nanoclaw.host import Host, build_host
from nanoclaw.permissions.agent_actions import GATED_ACTIONS
from nanoclaw.settings import Settings
from tests.conftest import REPO_ROOT


@pytest.fixture
def built(settings: Settings) -> Host:
    return build_host(settings)  # built, not started: handlers are registered at build time


def test_every_gated_action_has_a_handler(built: Host) -> None:
    missing = sorted(GATED_ACTIONS - set(built.actions.names()))
    assert missing == [], f"gated actions without a handler: {missing}"


def test_every_runner_tool_that_asks_the_host_has_a_handler(built: Host) -> None:
    asked = {
        t.name: t.host_action
        for t in nanoclaw_tools()
        if isinstance(t, FunctionTool) and t.host_action
    }
    assert {"schedule_task", "create_agent", "add_destination", "admin_request"} <= set(asked)
    missing = sorted(a for a in asked.values() if a not in built.actions.names())
    assert missing == [], f"runner tools whose host action has no handler: {missing}"


def test_docs_agent_md_lists_every_tool() -> None:
    doc = (REPO_ROOT / "docs" / "agent.md").read_text()
    section = doc[doc.index("## Tools") : doc.index("## Output protocol")]
    listed = set(re.findall(r"^\| `([a-z_]+)`", section, re.MULTILINE))
    tools = {t.name for t in nanoclaw_tools()} | {BashTool.name, TextEditorTool.name}
    tools |= {str(t["name"]) for t in web_server_tools()}
    assert sorted(tools - listed) == []
    assert sorted(listed - tools) == []  # nothing promised that is not there


def test_docs_admin_md_names_every_gated_action() -> None:
    doc = (REPO_ROOT / "docs" / "admin.md").read_text()
    assert [a for a in sorted(GATED_ACTIONS) if f"`{a}`" not in doc] == []


def test_every_function_tool_either_asks_the_host_or_only_writes_its_own_rows() -> None:
    chat_only = {"send_message", "send_file", "edit_message", "add_reaction", "ask_user_question",
                 "list_tasks"}  # fmt: skip
    undeclared = sorted(
        t.name
        for t in nanoclaw_tools()
        if isinstance(t, FunctionTool) and not t.host_action and t.name not in chat_only
    )
    assert undeclared == [], f"tools that name no host action: {undeclared}"


def test_actions_that_change_an_agent_are_gated() -> None:
    assert {"add_mcp_server", "add_destination", "remove_destination", "wire_chat",
            "unwire_chat", "add_mount", "restart_agent"} <= GATED_ACTIONS  # fmt: skip
