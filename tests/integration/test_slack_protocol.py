"""Slack against its real shapes and limits: escaped text, references, redeliveries,
disconnects, failing reconnects, 429 Retry-After per channel, and short card button ids."""

from __future__ import annotations

import html
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from nanoclaw.channels.registry import STATE_FILE, read_states
from nanoclaw.channels.slack.text import unescape
from nanoclaw.host import Host
from nanoclaw.settings import Settings
from tests.channel_helpers import deliveries, until, user_rows
from tests.fakes.slack import BOT_USER, FakeSlack
from tests.integration.test_slack_channel import (
    MOCK,
    card_ts,
    posted_to,
    slack_host,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def host(settings: Settings, slack: FakeSlack) -> AsyncIterator[Host]:
    async with slack_host(settings, slack) as instance:
        yield instance


def posts(slack: FakeSlack, channel: str) -> list[str]:
    return [
        str(c.params["text"])
        for c in slack.called("chat.postMessage")
        if c.params.get("channel") == channel and c.result is not None
    ]


async def test_a_message_with_special_characters_reaches_the_agent_as_typed(
    host: Host, slack: FakeSlack
) -> None:
    event = slack.message_event("a < b && c")
    assert event["text"] == "a &lt; b &amp;&amp; c"  # how Slack sends it
    await slack.push_event(event)
    await until(lambda: posts(slack, "D1"), "the answer")
    (row,) = user_rows(host)
    assert row["content"]["text"] == "a < b && c"
    (reply,) = posts(slack, "D1")
    assert reply == f"Andy {MOCK}a &lt; b &amp;&amp; c"  # escaped exactly once on the way out
    assert unescape(reply) == f"Andy {MOCK}a < b && c"


async def test_references_and_labelled_links_are_resolved_once_and_cached(
    host: Host, slack: FakeSlack
) -> None:
    wire = f"<@{BOT_USER}> ask <@U2> in <#C1>: is 3 &lt; 5? <https://e.com/a?b=1&amp;c=2|the docs>"
    await slack.push_event(slack.message_event(wire, channel="C1", escaped=False))
    await slack.push_event(
        slack.message_event(f"<@{BOT_USER}> and <#C1>", channel="C1", escaped=False)
    )
    await until(lambda: len(user_rows(host)) == 2, "both rows")
    first, second = sorted((r["content"]["text"] for r in user_rows(host)), key=len, reverse=True)
    assert first == "@andy ask @Bob in #general: is 3 < 5? [the docs](https://e.com/a?b=1&c=2)"
    assert second == "@andy and #general"
    assert len(slack.called("conversations.info")) == 1  # the name is cached


async def test_a_redelivered_event_routes_once(host: Host, slack: FakeSlack) -> None:
    await slack.push_event(slack.message_event("only once"))
    await slack.redeliver("timeout")  # retry_attempt 1: Slack did not see the ack in time
    await slack.redeliver("timeout")
    await slack.push_event(slack.message_event("next"))
    await until(lambda: len(user_rows(host)) == 2, "two rows")  # the redeliveries came between
    assert sorted(r["content"]["text"] for r in user_rows(host)) == ["next", "only once"]


async def test_a_disconnect_envelope_reconnects_and_messages_keep_flowing(
    host: Host, slack: FakeSlack
) -> None:
    assert slack.connections == 1
    await slack.disconnect("refresh_requested")
    await until(lambda: slack.connections == 2, "the new connection")
    await slack.push_event(slack.message_event("after the refresh"))
    await until(lambda: posts(slack, "D1"), "the answer")
    assert posts(slack, "D1") == [f"Andy {MOCK}after the refresh"]


async def test_failing_reconnects_show_reconnecting_not_connected(
    host: Host, slack: FakeSlack
) -> None:
    state_path = host.settings.data_path / STATE_FILE

    def slack_state() -> str:
        channels = (read_states(state_path) or {}).get("channels") or {}
        return str((channels.get("slack") or {}).get("state"))

    await until(lambda: slack_state() == "connected", "connected at first")
    slack.refuse_connections = True
    await slack.drop_sockets()
    await until(lambda: slack_state() == "reconnecting", "the reconnecting state")
    adapter = host.channels.get("slack")
    assert adapter is not None and not adapter.is_connected()
    slack.refuse_connections = False
    await until(lambda: slack_state() == "connected", "the recovery", within_s=60)
    await slack.push_event(slack.message_event("back"))
    await until(lambda: posts(slack, "D1"), "the answer after the recovery")


async def test_a_429_delays_that_channel_only(host: Host, slack: FakeSlack) -> None:
    slack.rate_limited_channels["D1"] = 1
    slack.retry_after_s = 7  # longer than the scheduler waits inline: the row is deferred
    await slack.push_event(slack.message_event("in the dm"))
    await until(lambda: slack.called("chat.postMessage"), "the 429")
    await slack.push_event(
        slack.message_event(f"<@{BOT_USER}> in the channel", channel="C1", escaped=False)
    )
    await until(lambda: posts(slack, "C1"), "the channel's answer")
    assert posts(slack, "D1") == []  # still waiting out its Retry-After
    await until(lambda: posts(slack, "D1"), "the dm's answer after Retry-After", within_s=30)
    assert all(d["attempts"] == 1 for d in deliveries(host) if d["status"] == "delivered")


async def test_a_card_with_long_non_ascii_options_carries_a_short_id_and_works(
    host: Host, slack: FakeSlack
) -> None:
    long_option = "Größenänderung " * 40  # 600 characters, far beyond a button value's room
    await slack.push_event(slack.message_event(f"!ask Which? | {long_option.strip()} | Nein"))
    (card,) = await slack.wait_for("chat.postMessage", where=lambda c: "blocks" in c.params)
    blocks = card.params["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    first: dict[str, Any] = blocks[1]["elements"][0]
    assert len(first["value"].encode()) <= 64  # an id; the option stays on the host
    await slack.click(user="U1", channel="D1", message_ts=card_ts(card), button=first)
    answers = await slack.wait_for(
        "chat.postMessage", where=lambda c: str(c.params["text"]).startswith("You chose")
    )
    assert html.unescape(answers[0].params["text"]) == f"You chose: {long_option.strip()}"
    assert posted_to("D1")(answers[0])


async def test_a_thread_reply_carries_its_parent(host: Host, slack: FakeSlack) -> None:
    parent = slack.message_event(f"<@{BOT_USER}> start", channel="C1", user="U2", escaped=False)
    await slack.push_event(parent)
    reply = slack.message_event(
        f"<@{BOT_USER}> and this?",
        channel="C1",
        escaped=False,
        thread_ts=parent["ts"],
        parent_user_id="U2",
    )
    await slack.push_event(reply)
    await until(lambda: len(user_rows(host)) == 2, "both rows")
    (row,) = [r for r in user_rows(host) if r["content"]["text"] == "@andy and this?"]
    assert row["content"]["reply_to"] == {
        "id": parent["ts"],
        "text": None,  # a thread reply event names its parent, not the parent's text
        "sender": "Bob",
    }
