"""What the agent is promised exists: every gated action and every runner tool's host action has a
handler on a real host, the docs list every tool, and a later action answers honestly."""

from __future__ import annotations

import re

import pytest
from agent_runner.tools.base import FunctionTool
from agent_runner.tools.nanoclaw import nanoclaw_tools
from agent_runner.tools.sandbox import BashTool, TextEditorTool, web_server_tools

from nanoclaw.db.models import SessionRow
from nanoclaw.delivery.actions import SystemActions
from nanoclaw.host import Host, build_host
from nanoclaw.permissions.agent_actions import GATED_ACTIONS
from nanoclaw.sessions.outbound_reader import OutboundRow
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


async def test_an_action_of_a_later_release_answers_honestly() -> None:
    row = OutboundRow(id="out-1", seq=1, in_reply_to=None, timestamp="", deliver_after=None,
                      kind="system", channel_type=None, platform_id=None, thread_id=None,
                      content={"action": "add_mcp_server", "name": "x"})  # fmt: skip
    session = SessionRow(id="s", agent_group_id="ag")
    result = await SystemActions().run(session, row)
    assert result.status == "error" and "not available in this build" in result.text
