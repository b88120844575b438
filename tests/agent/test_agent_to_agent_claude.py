"""Agent A asks agent B from its older chat; B's answer lands in that chat's session, with that
chat's conversation, and A's answer appears in that chat (real SDK, fake Messages API)."""

from __future__ import annotations

from datetime import timedelta

from nanoclaw.contract.timeutil import utc_now
from nanoclaw.host import Host
from tests.agent.conftest import ChatListener, claude_agent
from tests.fakes.anthropic_server import FakeAnthropic, reply
from tests.helpers import say, wire_chat


async def test_the_answer_appears_in_the_chat_that_asked(
    agent_host: Host, fake_api: FakeAnthropic
) -> None:
    ada = claude_agent(agent_host, "Ada", chat="older")
    bob = claude_agent(agent_host, "Bob", chat="bobs-desk")
    wire_chat(agent_host.repo, ada, "newer")
    agent_host.repo.add_agent_destination(agent_group_id=ada.id, name="bob", target_id=bob.id)
    agent_host.repo.add_agent_destination(agent_group_id=bob.id, name="ada", target_id=ada.id)
    socket = agent_host.settings.cli_socket
    fake_api.push(reply("Hi from the older chat."), reply("Hi from the newer chat."))
    await say(socket, "remember: my cat is called Tom", chat="older")
    await say(socket, "a different topic here", chat="newer")
    newer_chat = agent_host.repo.messaging_group("cli", "newer")
    assert newer_chat is not None
    (newer,) = [
        s
        for s in agent_host.repo.sessions()
        if s.agent_group_id == ada.id and s.messaging_group_id == newer_chat.id
    ]
    agent_host.repo.touch_session(newer.id, at=utc_now() + timedelta(days=1))  # Ada's newest
    fake_api.push(
        reply('<message to="bob">What is the capital of France?</message>'),
        reply("Paris."),  # Bob's turn: his final text goes back to the agent that asked
        reply('<message to="older">Bob says: Paris.</message>'),
    )
    async with ChatListener(socket, "older") as older, ChatListener(socket, "newer") as other:
        await say(socket, "ask Bob for the capital of France", chat="older")
        await older.wait_for(lambda f: f.get("text") == "Bob says: Paris.", 30)
    asked_back = fake_api.requests[4]  # Ada's turn on Bob's answer
    assert "Paris." in asked_back.all_text()
    assert "my cat is called Tom" in asked_back.all_text()  # the older chat's conversation
    assert "a different topic here" not in asked_back.all_text()
    assert not any("Paris" in str(f.get("text")) for f in other.frames)
