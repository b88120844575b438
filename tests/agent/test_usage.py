"""Usage per turn: recorded by the runner, aggregated by the host, shown by ``nanoclaw usage``;
a spent daily budget pauses the group's turns and tells the user."""

from __future__ import annotations

import asyncio
import json

from typer.testing import CliRunner

from nanoclaw.channels.cli.protocol import encode
from nanoclaw.cli import app as cli_app
from nanoclaw.db.models import ContainerConfig, UsageTurn
from nanoclaw.host import Host
from tests.agent.conftest import (
    ChatListener,
    claude_agent,
    eventually,
    inbound_rows,
    outbound_query,
    session_layout,
)
from tests.fakes.anthropic_server import FakeAnthropic, reply, tool_call
from tests.helpers import say

# Sonnet list prices: $3 in, $15 out, $0.30 cache read, $3.75 cache write per million tokens.
TURN_COST_USD = (100 * 3 + 50 * 15 + 1000 * 0.3 + 200 * 3.75) / 1_000_000


def _usage_rows(host: Host) -> list[UsageTurn]:
    with host.db.session() as s:
        return list(s.query(UsageTurn).order_by(UsageTurn.id))


async def test_tokens_and_cost_per_turn_reach_the_central_db_and_the_cli(
    agent_host: Host, fake_api: FakeAnthropic
) -> None:
    agent = claude_agent(agent_host)
    fake_api.push(
        tool_call("bash", {"command": "true"}, input_tokens=60, output_tokens=20),
        reply("done", input_tokens=40, output_tokens=30, cache_read=1000, cache_write=200),
    )
    await say(agent_host.settings.cli_socket, "count me")
    layout = session_layout(agent_host, agent)
    ((model, inp, out, read, write, cost),) = outbound_query(
        layout,
        "SELECT model, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,"
        " cost_usd FROM usage",
    )
    assert (model, inp, out, read, write) == ("claude-sonnet-4-5", 100, 50, 1000, 200)
    assert abs(cost - TURN_COST_USD) < 1e-9
    (row,) = await eventually(lambda: _usage_rows(agent_host))
    assert (row.agent_group_id, row.input_tokens, row.cache_write_tokens) == (agent.id, 100, 200)
    assert row.day == row.occurred_at.date().isoformat()  # the test host's zone is UTC

    cli_app._State.settings = agent_host.settings
    try:
        result = CliRunner().invoke(cli_app.app, ["usage", "--json"])
        by_day = CliRunner().invoke(cli_app.app, ["usage", "--by", "day", "--agent", "Andy"])
    finally:
        cli_app._State.settings = None
    assert result.exit_code == 0, result.output
    (total,) = json.loads(result.output)
    assert total["key"] == agent.id and total["turns"] == 1
    assert abs(total["cost_usd"] - TURN_COST_USD) < 1e-9
    assert by_day.exit_code == 0 and row.day in by_day.output


async def test_a_spent_daily_budget_pauses_the_group_and_tells_the_user(
    agent_host: Host, fake_api: FakeAnthropic
) -> None:
    agent = claude_agent(agent_host, daily_budget_usd=0.001)
    fake_api.push(
        reply("pricey", input_tokens=100, output_tokens=50, cache_read=1000, cache_write=200),
        reply("back again"),
    )
    socket = agent_host.settings.cli_socket
    async with ChatListener(socket) as chat:
        await say(socket, "expensive question")
        notice = await chat.wait_for(lambda f: "daily budget is spent" in str(f.get("text")))
        assert "$0.00 of $0.00" not in notice["text"]
        await eventually(lambda: not agent_host.supervisor.running_sessions())
        # While spent, a new message waits pending: no runner starts, the model is not called.
        _reader, writer = await asyncio.open_unix_connection(str(socket))
        writer.write(
            encode(
                {"type": "message", "chat": "local", "sender": "alice", "text": "are you there?"}
            )
        )
        await writer.drain()
        layout = session_layout(agent_host, agent)
        await eventually(lambda: len(inbound_rows(layout, "kind = 'chat'")) == 2)
        await asyncio.sleep(0.5)
        assert len(fake_api.requests) == 1
        assert not agent_host.supervisor.running_sessions()
        # Raising the budget lets the waiting message through.
        with agent_host.db.session() as s:
            cfg = s.get(ContainerConfig, agent.id)
            assert cfg is not None
            cfg.daily_budget_usd = 10.0
        (session,) = agent_host.repo.sessions()
        assert await agent_host.supervisor.wake(session.id)
        await chat.wait_for(lambda f: f.get("text") == "back again")
        writer.close()
