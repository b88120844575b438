"""Slack end to end: fake Slack (Web API + Socket Mode) → real host → real runner → Slack calls."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from nanoclaw.channels.slack import adapter as slack_adapter
from nanoclaw.channels.slack.adapter import SlackAdapter
from nanoclaw.channels.slack.mrkdwn import to_mrkdwn
from nanoclaw.host import Host, build_host
from nanoclaw.settings import Settings
from tests.channel_helpers import wired_host
from tests.fakes.slack import BOT_USER, FakeSlack
from tests.helpers import make_agent, wire_chat

MOCK = "(mock model, no API key configured) heard: "
pytestmark = pytest.mark.timeout(60)


def slack_settings(settings: Settings, fake: FakeSlack, **extra: Any) -> Settings:
    return settings.model_copy(
        update={
            "slack_bot_token": SecretStr(fake.bot_token),
            "slack_app_token": SecretStr(fake.app_token),
            "slack_api_base_url": fake.api_url,
            **extra,
        }
    )


def slack_host(settings: Settings, slack: FakeSlack) -> AbstractAsyncContextManager[Host]:
    """The host of these tests: Andy answers DM ``D1`` and mentions in channel ``C1``."""
    return wired_host(
        slack_settings(settings, slack),
        channel="slack",
        connected=lambda _host: slack.wait_connected(),
        direct=["D1"],
        groups=["C1"],
    )


@pytest.fixture
async def host(settings: Settings, slack: FakeSlack) -> AsyncIterator[Host]:
    async with slack_host(settings, slack) as instance:
        yield instance


_ts = iter(range(1, 10_000))


def message(text: str, *, channel: str = "D1", user: str = "U1", **extra: Any) -> dict[str, Any]:
    """A user's message event from the fixture (``tests/fixtures/slack/event_message.json``)."""
    return _FAKE.message_event(text, channel=channel, user=user, escaped=False, **extra)


_FAKE = FakeSlack()  # only its payload builders are used here (per-call ts from its counter)


def card_ts(card: Any) -> str:
    """The ts Slack gave a posted card (what a click names)."""
    assert card.result is not None
    return str(card.result["ts"])


def posted_to(channel: str) -> Any:
    return lambda c: c.params.get("channel") == channel


async def test_the_adapter_is_built_from_settings_and_connects_over_socket_mode(
    host: Host, slack: FakeSlack
) -> None:
    adapter = host.channels.get("slack")
    assert isinstance(adapter, SlackAdapter)
    for _ in range(400):  # under load the socket may still be opening: wait for the state
        if adapter.is_connected():
            break
        await asyncio.sleep(0.05)
    assert adapter.is_connected()
    assert adapter.mode == "socket"
    assert [c.method for c in slack.calls][:2] == ["auth.test", "apps.connections.open"]
    assert slack.connections == 1
    assert "slack" in host.channels.threaded()
    assert {s.name: s.state for s in host.channels.states()}["slack"] == "connected"


async def test_a_dm_is_answered_with_a_working_indicator_while_the_turn_runs(
    host: Host, slack: FakeSlack
) -> None:
    event = message("hello there")
    await slack.push_event(event)
    (reply,) = await slack.wait_for("chat.postMessage", where=posted_to("D1"))
    assert reply.params["text"] == f"Andy {MOCK}hello there"
    assert reply.params.get("thread_ts") is None  # a top-level DM is answered in line
    (working,) = await slack.wait_for("reactions.add")
    assert working.params == {
        "channel": "D1",
        "timestamp": event["ts"],
        "name": "hourglass_flowing_sand",
    }
    (stopped,) = await slack.wait_for("reactions.remove")
    assert stopped.params["timestamp"] == event["ts"]
    assert slack.calls.index(working) < slack.calls.index(reply) < slack.calls.index(stopped)


async def test_the_working_indicator_comes_off_the_message_it_was_put_on(
    host: Host, slack: FakeSlack, tmp_path: Path
) -> None:
    held = tmp_path / "hold"
    held.touch()
    first = message(f"!hold-while {held}")
    await slack.push_event(first)
    (working,) = await slack.wait_for("reactions.add")
    assert working.params["timestamp"] == first["ts"]
    second = message("and another thing")  # arrives while the first turn runs
    await slack.push_event(second)
    held.unlink()  # the first turn ends
    on_first = await slack.wait_for(
        "reactions.remove", where=lambda c: c.params["timestamp"] == first["ts"]
    )
    assert len(on_first) == 1
    await slack.wait_for(
        "chat.postMessage", where=lambda c: "and another thing" in c.params["text"]
    )
    # Every ⏳ put on came off the message it was put on.
    await slack.wait_for("reactions.remove", count=len(slack.called("reactions.add")))
    added = sorted(c.params["timestamp"] for c in slack.called("reactions.add"))
    removed = sorted(c.params["timestamp"] for c in slack.called("reactions.remove"))
    assert added == removed


async def test_the_latest_message_per_thread_is_remembered_within_a_bound(
    host: Host, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A top-level channel message is a thread of its own: each one is a new key.
    monkeypatch.setattr(slack_adapter, "LAST_INBOUND_KEPT", 3)
    events = [message(f"note {n}", channel="C1") for n in range(5)]
    for event in events:
        await slack.push_event(event)
    adapter = host.channels.get("slack")
    assert isinstance(adapter, SlackAdapter)
    last = ("C1", events[-1]["ts"])
    for _ in range(200):  # the ack can come before the handler ran
        if last in adapter._last_inbound:
            break
        await asyncio.sleep(0.02)
    assert list(adapter._last_inbound) == [("C1", e["ts"]) for e in events[-3:]]


async def test_a_channel_mention_arrives_twice_but_is_answered_once_in_its_thread(
    host: Host, slack: FakeSlack
) -> None:
    first = message(f"<@{BOT_USER}> what's up?", channel="C1")
    await slack.push_event({**first, "type": "app_mention"})
    await slack.push_event(first)
    second = message(f"<@{BOT_USER}> another topic", channel="C1")
    await slack.push_event(second)
    replies = await slack.wait_for("chat.postMessage", count=2, where=posted_to("C1"))
    by_thread = {c.params["thread_ts"]: c.params["text"] for c in replies}
    assert by_thread == {
        first["ts"]: f"Andy {MOCK}@andy what's up?",
        second["ts"]: f"Andy {MOCK}@andy another topic",
    }
    # each thread is its own session
    threads = sorted(s.thread_id for s in host.repo.sessions() if s.thread_id)
    assert threads == sorted([first["ts"], second["ts"]])
    await asyncio.sleep(0.3)
    assert len(slack.called("chat.postMessage")) == 2  # the duplicate event was not answered


async def test_a_thread_reply_joins_the_thread_session(host: Host, slack: FakeSlack) -> None:
    root = message(f"<@{BOT_USER}> start", channel="C1")
    await slack.push_event(root)
    await slack.wait_for("chat.postMessage", where=posted_to("C1"))
    follow = message(f"<@{BOT_USER}> and more", channel="C1", thread_ts=root["ts"])
    await slack.push_event(follow)
    replies = await slack.wait_for("chat.postMessage", count=2, where=posted_to("C1"))
    assert {c.params["thread_ts"] for c in replies} == {root["ts"]}
    assert (
        "start / @andy and more" in replies[1].params["text"]
        or "and more" in replies[1].params["text"]
    )
    assert len([s for s in host.repo.sessions() if s.thread_id]) == 1


async def test_bot_edited_and_unmentioned_channel_messages_are_ignored(
    host: Host, slack: FakeSlack
) -> None:
    await slack.push_event(message("from a bot", bot_id="B9", subtype="bot_message"))
    await slack.push_event(
        message("edited", subtype="message_changed", message={"text": "edited!", "user": "U1"})
    )
    await slack.push_event(message("my own echo", user=BOT_USER))
    await slack.push_event(message("chatter without a mention", channel="C1"))
    await slack.push_event(message("real one"))
    (reply,) = await slack.wait_for("chat.postMessage")
    assert reply.params["text"] == f"Andy {MOCK}real one"
    await asyncio.sleep(0.3)
    assert len(slack.called("chat.postMessage")) == 1


async def test_files_in_are_downloaded_with_the_bot_token_and_files_out_use_upload_v2(
    host: Host, slack: FakeSlack
) -> None:
    slack.files["notes.txt"] = b"my notes"
    event = message(
        "!file report.txt quarterly numbers",
        subtype="file_share",
        files=[
            {
                "id": "F1",
                "name": "notes.txt",
                "mimetype": "text/plain",
                "size": 8,
                "url_private_download": slack.file_url("notes.txt"),
            }
        ],
    )
    await slack.push_event(event)
    (complete,) = await slack.wait_for("files.completeUploadExternal")
    (get_url,) = slack.called("files.getUploadURLExternal")
    assert get_url.params["filename"] == "report.txt"
    assert list(slack.uploads.values()) == [b"quarterly numbers"]
    assert complete.params["channel_id"] == "D1"
    (caption,) = await slack.wait_for("chat.postMessage")
    assert caption.params["text"] == "Here is report.txt"
    (session,) = host.repo.sessions()
    saved = list(host.sessions.layout(session).inbox.rglob("notes.txt"))
    assert [p.read_bytes() for p in saved] == [b"my notes"]


async def test_edits_and_reactions_reach_slack(host: Host, slack: FakeSlack) -> None:
    await slack.push_event(message("!edit the **final** answer"))
    (update,) = await slack.wait_for("chat.update")
    (draft,) = slack.called("chat.postMessage")
    assert draft.params["text"] == "Working on it…"
    assert update.params["text"] == "the *final* answer"
    assert update.params["channel"] == "D1"
    event = message("!react 👍")
    await slack.push_event(event)
    reactions = await slack.wait_for(
        "reactions.add", where=lambda c: c.params["name"] == "thumbsup"
    )
    assert reactions[0].params["timestamp"] == event["ts"]


async def test_long_replies_are_split_and_markdown_becomes_mrkdwn(
    host: Host, slack: FakeSlack
) -> None:
    long_text = "**Title** see [docs](https://example.com/a?b=1&c=2)\n\n" + ("word " * 1000)
    await slack.push_event(message(long_text))
    # paragraph boundary first, then words: the title, then two chunks of words
    replies = await slack.wait_for("chat.postMessage", count=3)
    assert all(len(c.params["text"]) <= 3900 for c in replies)
    joined = " ".join(c.params["text"] for c in replies)
    assert "*Title*" in joined and "<https://example.com/a?b=1&amp;c=2|docs>" in joined
    assert joined.count("word") == 1000  # split, never truncated


async def test_a_question_card_is_answered_with_a_block_kit_button(
    host: Host, slack: FakeSlack
) -> None:
    await slack.push_event(message("!ask Which colour? | Red | Blue"))
    (card,) = await slack.wait_for("chat.postMessage", where=lambda c: "blocks" in c.params)
    blocks = card.params["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    buttons = blocks[1]["elements"]
    assert [b["text"]["text"] for b in buttons] == ["Red", "Blue"]
    assert "Which colour?" in card.params["text"]  # the notification fallback
    assert buttons[1]["value"] == buttons[1]["value"][:64]  # a short id; options stay on the host
    ts = card_ts(card)
    await slack.click(user="U1", channel="D1", message_ts=ts, button=buttons[1])
    (edited,) = await slack.wait_for("chat.update")
    assert edited.params["ts"] == ts
    assert edited.params["text"] == "Question\n\nBlue\n\nAnswer sent."
    answers = await slack.wait_for(
        "chat.postMessage", where=lambda c: c.params["text"].startswith("You chose")
    )
    assert answers[0].params["text"] == "You chose: Blue"


async def test_a_click_from_someone_without_access_is_not_accepted(
    settings: Settings, slack: FakeSlack
) -> None:
    host = build_host(slack_settings(settings, slack))
    await host.start()
    try:
        await slack.wait_connected()
        andy = make_agent(host.repo, "Andy")
        wire_chat(host.repo, andy, "D1", channel="slack", policy="strict")
        host.repo.upsert_user("slack:U1", kind="slack", display_name="Alice")
        host.repo.add_member("slack:U1", andy.id, added_by="test")
        await slack.push_event(message("!ask Proceed? | Yes | No"))
        (card,) = await slack.wait_for("chat.postMessage", where=lambda c: "blocks" in c.params)
        blocks = card.params["blocks"]
        blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
        yes = blocks[1]["elements"][0]
        await slack.click(user="U2", channel="D1", message_ts=card_ts(card), button=yes)
        (refusal,) = await slack.wait_for("chat.postEphemeral")
        assert refusal.params["user"] == "U2"
        assert refusal.params["text"] == "You may not answer this question."
        assert slack.called("chat.update") == []  # the buttons stay for the right person
        await slack.click(user="U1", channel="D1", message_ts=card_ts(card), button=yes)
        answers = await slack.wait_for(
            "chat.postMessage", where=lambda c: c.params["text"].startswith("You chose")
        )
        assert answers[0].params["text"] == "You chose: Yes"
    finally:
        await host.stop()


async def test_rate_limited_calls_are_retried(host: Host, slack: FakeSlack) -> None:
    slack.rate_limit["chat.postMessage"] = 1
    await slack.push_event(message("are you there?"))
    calls = await slack.wait_for("chat.postMessage", count=2)
    assert [c.params["text"] for c in calls] == [f"Andy {MOCK}are you there?"] * 2
    (session,) = host.repo.sessions()
    states = host.reader.deliveries(host.sessions.layout(session))
    for _ in range(100):
        if states:
            break
        await asyncio.sleep(0.05)
        states = host.reader.deliveries(host.sessions.layout(session))
    assert [s.attempts for s in states.values()] == [1]  # the SDK retried; delivery saw one success


async def test_http_events_mode_verifies_signatures_and_routes(
    settings: Settings, slack: FakeSlack
) -> None:
    secret = "shh-signing"
    s = slack_settings(
        settings,
        slack,
        slack_mode="http",
        slack_app_token=None,
        slack_signing_secret=SecretStr(secret),
        slack_http_port=0,
    )
    host = build_host(s)
    await host.start()
    try:
        adapter = host.channels.get("slack")
        assert isinstance(adapter, SlackAdapter)
        for _ in range(200):
            if adapter.http_url:
                break
            await asyncio.sleep(0.02)
        andy = make_agent(host.repo, "Andy")
        wire_chat(host.repo, andy, "D1", channel="slack")
        body = json.dumps(
            {
                "type": "event_callback",
                "team_id": "T0001",
                "api_app_id": "A0001",
                "event": message("over http"),
                "event_id": "Ev1",
                "event_time": 1,
            }
        )
        stamp = str(int(time.time()))
        good = (
            "v0="
            + hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
        )
        url = adapter.http_url
        assert url is not None
        async with httpx.AsyncClient() as client:
            forged = await client.post(
                url,
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Slack-Request-Timestamp": stamp,
                    "X-Slack-Signature": "v0=" + "0" * 64,
                },
            )
            assert forged.status_code == 401
            ok = await client.post(
                url,
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Slack-Request-Timestamp": stamp,
                    "X-Slack-Signature": good,
                },
            )
            assert ok.status_code == 200
        (reply,) = await slack.wait_for("chat.postMessage")
        assert reply.params["text"] == f"Andy {MOCK}over http"
    finally:
        await host.stop()


def test_markdown_to_mrkdwn() -> None:
    assert to_mrkdwn("**bold** and *it* and ~~gone~~") == "*bold* and _it_ and ~gone~"
    assert to_mrkdwn("# Head\n- one\n- two") == "*Head*\n• one\n• two"
    assert to_mrkdwn("a < b & c") == "a &lt; b &amp; c"
    assert (
        to_mrkdwn("`**not bold**` ```py\nx = 1 < 2\n```") == "`**not bold**` ```x = 1 &lt; 2\n```"
    )


async def test_an_unknown_sender_is_approved_by_the_owner_with_a_block_kit_button(
    settings: Settings, slack: FakeSlack
) -> None:
    host = build_host(slack_settings(settings, slack))
    await host.start()
    try:
        await slack.wait_connected()
        andy = make_agent(host.repo, "Andy")
        wire_chat(
            host.repo,
            andy,
            "C1",
            channel="slack",
            policy="request_approval",
            is_group=True,
            engage_mode="mention",
            engage_pattern=None,
        )
        host.repo.upsert_user("slack:U1", kind="slack", display_name="Alice")
        host.repo.grant_role("slack:U1", "owner", granted_by="test")
        asked = message(f"<@{BOT_USER}> can I join?", channel="C1", user="U2")
        await slack.push_event(asked)
        (card,) = await slack.wait_for("chat.postMessage", where=lambda c: "blocks" in c.params)
        assert card.params["channel"] == "DU1"  # the owner's DM, opened with conversations.open
        blocks = card.params["blocks"]
        blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
        allow = next(b for b in blocks[1]["elements"] if b["text"]["text"] == "Allow")
        await slack.click(user="U2", channel="DU1", message_ts=card_ts(card), button=allow)
        (refused,) = await slack.wait_for("chat.postEphemeral")
        assert refused.params["text"] == "You may not answer this request."
        assert slack.called("chat.update") == []
        await slack.click(user="U1", channel="DU1", message_ts=card_ts(card), button=allow)
        (settled,) = await slack.wait_for("chat.update")
        assert settled.params["ts"] == card_ts(card) and "Allow" in settled.params["text"]
        replies = await slack.wait_for("chat.postMessage", where=posted_to("C1"))
        assert replies[0].params["thread_ts"] == asked["ts"]  # the replayed message is answered
        assert replies[0].params["text"] == f"Andy {MOCK}@andy can I join?"
    finally:
        await host.stop()
