"""The CLI's reply context: a message frame's ``reply_to`` names an earlier message of the chat,
and the agent reads which one (its seq and the quoted text)."""

from __future__ import annotations

import re

import pytest

from nanoclaw.channels.cli.adapter import SAID_TEXT_KEPT_CHARS
from nanoclaw.host import Host
from tests.channel_helpers import user_rows
from tests.chat_client import ChatClient
from tests.helpers import make_agent, wire_chat

pytestmark = pytest.mark.timeout(60)


async def test_a_reply_to_a_numbered_cli_message_tells_the_agent_which_one(host: Host) -> None:
    wire_chat(host.repo, make_agent(host.repo, "Andy"), "local")
    async with ChatClient(host.settings.cli_socket, "local", "alice") as chat:
        await chat.say("the plan is <b>A</b>")
        answer = await chat.reply_containing("heard: the plan is")
        await chat._send(
            {
                "type": "message",
                "chat": "local",
                "sender": "alice",
                "text": "!prompt why that one?",
                "id": "t-reply",
                "reply_to": answer["id"],  # the numbered reply the client showed
            }
        )
        prompt = str((await chat.reply_containing("why that one?"))["text"])  # CLI: verbatim
    (row,) = [r for r in user_rows(host) if r["content"]["text"] == "!prompt why that one?"]
    assert row["content"]["reply_to"] == {
        "id": answer["id"],
        "text": answer["text"],
        "sender": "Andy",
    }
    seq = re.search(r'reply_to="(\d+)"', prompt)
    assert seq is not None and int(seq.group(1)) % 2 == 1  # the agent's own message, by seq
    assert '<quoted_message from="Andy">' in prompt
    assert "the plan is &lt;b&gt;A&lt;/b&gt;" in prompt  # the quoted text, escaped


async def test_a_reply_to_must_be_a_message_id(host: Host) -> None:
    wire_chat(host.repo, make_agent(host.repo, "Andy"), "local")
    async with ChatClient(host.settings.cli_socket, "local", "alice") as chat:
        start = len(chat.frames)
        await chat._send(
            {"type": "message", "chat": "local", "sender": "alice", "text": "x", "reply_to": 7}
        )
        error = await chat.wait_for(lambda f: f.get("type") == "error", start=start)
    assert "reply_to" in str(error)


async def test_a_reply_to_a_long_message_quotes_its_beginning(host: Host) -> None:
    wire_chat(host.repo, make_agent(host.repo, "Andy"), "local")
    long_text = "word " * 1000  # 5,000 characters
    async with ChatClient(host.settings.cli_socket, "local", "alice") as chat:
        for frame in (
            {"type": "message", "chat": "local", "sender": "alice", "text": long_text, "id": "t-1"},
            {
                "type": "message",
                "chat": "local",
                "sender": "alice",
                "text": "!prompt about that",
                "id": "t-2",
                "reply_to": "t-1",
            },
        ):
            await chat._send(frame)
        await chat.reply_containing("about that")
    (row,) = [r for r in user_rows(host) if r["content"]["text"] == "!prompt about that"]
    quoted = row["content"]["reply_to"]["text"]
    assert len(quoted) == SAID_TEXT_KEPT_CHARS and quoted.endswith("…")
    assert long_text.startswith(quoted[:-1])
