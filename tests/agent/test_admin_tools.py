"""The agent's admin tools end to end (real SDK, fake Messages API, real host and runner): an admin's
request runs at once, anyone else's becomes an approval card, and restart_agent restarts the runner
after its turn with the note read first."""

from __future__ import annotations

import sqlite3
from typing import Any

from nanoclaw.admin.service import Actor
from nanoclaw.host import Host
from nanoclaw.permissions.approvals import APPROVE
from tests.agent.conftest import claude_agent, eventually, make_owner, session_layout
from tests.fakes.anthropic_server import FakeAnthropic, reply, tool_call
from tests.helpers import make_agent, say, texts


def destinations(host: Host, name: str = "Andy") -> list[str]:
    layout = session_layout(host, host.repo.agent_group(name))
    conn = sqlite3.connect(f"file:{layout.inbound_db}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT name FROM destinations ORDER BY name")]
    finally:
        conn.close()


async def test_an_admins_add_destination_runs_at_once_and_is_projected(
    agent_host: Host, fake_api: FakeAnthropic
) -> None:
    claude_agent(agent_host)
    make_agent(agent_host.repo, "Bob")
    make_owner(agent_host)  # cli:alice, the sender
    fake_api.push(
        tool_call("add_destination", {"name": "bob", "agent": "Bob"}),
        reply("Linked."),
    )
    exchange = await say(agent_host.settings.cli_socket, "link yourself to Bob")
    assert texts(exchange) == ["Linked."]
    (result,) = fake_api.requests[1].tool_results()
    assert 'Destination "bob" added' in str(result["content"])
    assert "bob" in destinations(agent_host)


async def test_a_non_admins_request_waits_for_an_approval_card(
    agent_host: Host, fake_api: FakeAnthropic
) -> None:
    claude_agent(agent_host)
    make_agent(agent_host.repo, "Bob")
    make_owner(agent_host, "cli:olive")  # an approver exists; the sender (alice) is no admin
    fake_api.push(tool_call("wire_chat", {"chat": "cli/elsewhere"}), reply("Asked."))
    await say(agent_host.settings.cli_socket, "wire yourself to elsewhere")
    (result,) = fake_api.requests[1].tool_results()
    assert "needs an admin's approval" in str(result["content"])
    pending = agent_host.permissions.admin.approvals(Actor.operator())
    assert [r["title"] for r in pending.rows if "wire_chat" in str(r["title"])] != []
    assert agent_host.repo.messaging_group("cli", "elsewhere") is None  # nothing ran yet
    (card,) = [r for r in pending.rows if "wire_chat" in str(r["title"])]
    fake_api.push(reply("Wired, thanks."))  # the agent's turn on the approved result
    answer = await agent_host.permissions.approvals.answer(
        card["id"], APPROVE, user_id="cli:olive", membership=agent_host.repo.membership("cli:olive")
    )
    assert answer.startswith("✅ Approved") and "Wired cli/elsewhere to Andy" in answer
    elsewhere = agent_host.repo.messaging_group("cli", "elsewhere")
    assert elsewhere is not None  # ran as the approver, through the admin service
    assert [w.agent_group_id for w in agent_host.repo.wirings_for(elsewhere.id)] == [
        agent_host.repo.agent_group("Andy").id
    ]


async def test_restart_agent_restarts_after_the_turn_and_the_note_is_read_first(
    agent_host: Host, fake_api: FakeAnthropic
) -> None:
    agent = claude_agent(agent_host)
    make_owner(agent_host)
    seen: list[str] = []

    def ask_restart(request: dict[str, Any]) -> dict[str, Any]:
        (running,) = agent_host.supervisor._running.values()  # the runner making this call
        seen.append(running.handle.runner_id)
        return tool_call("restart_agent", {"note": "Verify /workspace/extra/site is there."})

    fake_api.push(ask_restart, reply("Restarting now."), reply("Back after the restart."))
    exchange = await say(agent_host.settings.cli_socket, "restart to pick up the mount")
    assert texts(exchange) == ["Restarting now."]
    (session,) = agent_host.repo.sessions()
    (first,) = seen
    await fake_api.wait_requests(3, timeout_s=30)
    assert "Verify /workspace/extra/site is there." in fake_api.requests[2].all_text()
    await eventually(
        lambda: (
            session.id in agent_host.supervisor._running
            and agent_host.supervisor._running[session.id].handle.runner_id != first
        )
    )
    assert agent.id == session.agent_group_id
