"""The whole pipeline, from the CLI socket to a runner subprocess and back."""

from __future__ import annotations

from nanoclaw.host import Host
from tests.helpers import make_agent, say, texts, wire_chat


async def test_message_is_answered_through_the_real_runner(host: Host) -> None:
    agent = make_agent(host.repo, "Andy")
    wire_chat(host.repo, agent, "local")
    exchange = await say(host.settings.cli_socket, "hello there")
    assert texts(exchange) == ["Andy (mock model, no API key configured) heard: hello there"]
