"""Continuity across restarts, compaction, /clear, memory and attachments of the Claude agent."""

from __future__ import annotations

import base64

from nanoclaw.channels.base import Attachment, InboundEvent, InboundMessage
from nanoclaw.host import Host
from tests.agent.conftest import claude_agent, make_owner, outbound_query, session_layout
from tests.fakes.anthropic_server import FakeAnthropic, error, reply, tool_call
from tests.helpers import say, texts, wire_chat


def _roles(request: object) -> list[str]:
    return [m["role"] for m in request.messages]  # type: ignore[attr-defined]


async def test_conversation_resumes_after_the_runner_restarts(
    agent_host: Host, fake_api: FakeAnthropic
) -> None:
    agent = claude_agent(agent_host)
    fake_api.push(reply("Nice to meet you, Bob."), reply("You are Bob."))
    await say(agent_host.settings.cli_socket, "my name is Bob")
    (session,) = agent_host.repo.sessions()
    layout = session_layout(agent_host, agent)
    ((first_pid,),) = outbound_query(layout, "SELECT pid FROM runner_state")
    await agent_host.supervisor.stop(session.id)
    assert session.id not in agent_host.supervisor.running_sessions()
    exchange = await say(agent_host.settings.cli_socket, "what is my name?")
    assert texts(exchange) == ["You are Bob."]
    ((second_pid,),) = outbound_query(layout, "SELECT pid FROM runner_state")
    assert second_pid != first_pid  # a new runner read the old conversation
    resumed = fake_api.requests[1]
    assert _roles(resumed) == ["user", "assistant", "user"]
    assert "my name is Bob" in resumed.all_text() and "Nice to meet you, Bob." in resumed.all_text()


async def test_clear_resets_the_conversation_and_says_so(
    agent_host: Host, fake_api: FakeAnthropic
) -> None:
    claude_agent(agent_host)
    make_owner(agent_host)
    fake_api.push(reply("one"), reply("fresh"))
    await say(agent_host.settings.cli_socket, "remember the code 4711")
    cleared = await say(agent_host.settings.cli_socket, "/clear")
    assert texts(cleared) == ["Session cleared."]
    await say(agent_host.settings.cli_socket, "what was the code?")
    assert len(fake_api.requests) == 2  # /clear never reached the model
    assert _roles(fake_api.requests[1]) == ["user"]
    assert "4711" not in fake_api.requests[1].all_text()


async def test_older_turns_are_summarised_before_the_context_limit(
    agent_host: Host, fake_api: FakeAnthropic
) -> None:
    agent = claude_agent(agent_host, context_limit_tokens=1000)
    socket = agent_host.settings.cli_socket
    fake_api.push(
        reply("r1"),
        reply("r2"),
        reply("r3", input_tokens=700, cache_read=200),
        reply("SUMMARY: the user likes turtles"),
        reply("r4"),
    )
    for text in ("turn one about turtles", "turn two", "turn three"):
        await say(socket, text)
    exchange = await say(socket, "turn four")
    assert texts(exchange) == ["r4"]
    summary_call, fourth = fake_api.requests[3], fake_api.requests[4]
    assert "stream" not in summary_call.body  # the summariser uses the plain JSON call
    assert "turn one about turtles" in summary_call.all_text()
    assert "tools" not in summary_call.body
    first_message = fourth.messages[0]["content"][0]["text"]
    assert "SUMMARY: the user likes turtles" in first_message
    assert "turn one about turtles" not in fourth.all_text()
    assert "turn two" in fourth.all_text() and "turn three" in fourth.all_text()
    stored = outbound_query(session_layout(agent_host, agent), "SELECT role FROM transcript")
    assert [r for (r,) in stored].count("summary") == 1


async def test_a_too_long_prompt_compacts_and_retries_instead_of_wedging(
    agent_host: Host, fake_api: FakeAnthropic
) -> None:
    claude_agent(agent_host)
    socket = agent_host.settings.cli_socket
    fake_api.push(
        reply("r1"),
        error(400, "prompt is too long: 250000 tokens > 200000 maximum"),
        reply("SUMMARY OF EVERYTHING"),
        reply("recovered"),
    )
    await say(socket, "a long story")
    exchange = await say(socket, "continue")
    assert texts(exchange) == ["recovered"]
    retried = fake_api.requests[-1]
    assert "SUMMARY OF EVERYTHING" in retried.all_text()
    assert "a long story" not in retried.all_text()


async def test_memory_written_by_the_agent_is_in_the_groups_next_session(
    agent_host: Host, fake_api: FakeAnthropic
) -> None:
    agent = claude_agent(agent_host)
    group_dir = agent_host.settings.groups_path / agent.folder
    global_md = agent_host.settings.groups_path / "global" / "CLAUDE.md"
    global_md.parent.mkdir(parents=True, exist_ok=True)
    global_md.write_text("Be kind.")
    fake_api.push(
        tool_call(
            "str_replace_based_edit_tool",
            {
                "command": "create",
                "path": str(group_dir / "CLAUDE.md"),
                "file_text": "The user's favourite colour is green.",
            },
        ),
        tool_call(
            "str_replace_based_edit_tool",
            {"command": "create", "path": str(global_md), "file_text": "hacked"},
        ),
        reply("noted"),
    )
    await say(agent_host.settings.cli_socket, "remember: I like green")
    refused = fake_api.requests[2].tool_results()[0]
    assert refused["is_error"] is True and "read-only" in refused["content"]
    assert global_md.read_text() == "Be kind."
    wire_chat(agent_host.repo, agent, "elsewhere")  # another chat: a new session of the group
    fake_api.push(reply("green!"))
    await say(agent_host.settings.cli_socket, "my colour?", chat="elsewhere")
    assert len(agent_host.repo.sessions()) == 2
    system = fake_api.requests[-1].system_text
    assert "favourite colour is green" in system
    assert "Be kind." in system and "# You are Andy" in system
    assert "time zone is UTC" in system


async def test_images_and_pdfs_arrive_as_native_blocks(
    agent_host: Host, fake_api: FakeAnthropic
) -> None:
    claude_agent(agent_host)
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    )
    fake_api.push(reply("I see a pixel"))
    event = InboundEvent(
        channel_type="cli",
        platform_id="local",
        thread_id=None,
        message=InboundMessage(
            id="m-att",
            text="look at these",
            sender="alice",
            attachments=(
                Attachment(name="pixel.png", mime="image/png", data=png),
                Attachment(name="doc.pdf", mime="application/pdf", data=b"%PDF-1.4 fake"),
                Attachment(name="../notes.txt", mime="text/plain", data=b"plain notes"),
            ),
        ),
    )
    await agent_host.on_inbound(event)
    (request,) = await fake_api.wait_requests(1)
    blocks = request.messages[0]["content"]
    kinds = [b["type"] for b in blocks]
    assert kinds == ["text", "image", "document"]
    assert base64.b64decode(blocks[1]["source"]["data"]) == png
    assert blocks[2]["source"]["media_type"] == "application/pdf"
    text = blocks[0]["text"]
    assert "pixel.png" in text and "attachment-2" in text  # the unsafe name was replaced
    assert "/inbox/" in text  # other files are named by the path the tools can open
