"""Text at the channel edge: Slack unescaping, Markdown that never touches link targets,
Telegram reactions, safe file names, and the formatter's reply context."""

from __future__ import annotations

import pytest
from agent_runner.formatter import format_batch
from agent_runner.rows import InboundRow

from nanoclaw.channels.filenames import safe_file_name
from nanoclaw.channels.slack.mrkdwn import to_mrkdwn
from nanoclaw.channels.slack.text import to_readable, unescape
from nanoclaw.channels.telegram.html import to_html
from nanoclaw.channels.telegram.reactions import (
    ALLOWED_REACTIONS,
    ReactionNotAllowedError,
    allowed_reaction,
)
from tests.fakes.fixtures import fixture

NAMES = {"U1": "Alice", "UBOT": "andy"}
CHANNELS = {"C1": "general"}


async def _user(user: str) -> str | None:
    return NAMES.get(user)


async def _channel(channel: str) -> str | None:
    return CHANNELS.get(channel)


async def readable(text: str) -> str:
    return await to_readable(text, users=_user, channels=_channel)


async def test_slack_text_is_unescaped_into_what_a_person_reads() -> None:
    wire = "is 3 &lt; 5 &amp;&amp; 7 &gt; 2? see <https://e.com/a?b=1&amp;c=2|the docs>"
    assert await readable(wire) == "is 3 < 5 && 7 > 2? see [the docs](https://e.com/a?b=1&c=2)"
    assert await readable("a &lt; b &amp;&amp; c") == "a < b && c"
    assert await readable("literal &amp;lt; stays") == "literal &lt; stays"  # unescaped once


async def test_slack_references_are_resolved_to_names() -> None:
    assert await readable("<@UBOT> ask <@U1> in <#C1>") == "@andy ask @Alice in #general"
    assert await readable("<#C9|random> <@U9>") == "#random @U9"  # label, or the id if unknown
    assert await readable("<!here> <!subteam^S1|@devs> <!date^1700000000^{date}|Nov 14>") == (
        "@here @devs Nov 14"
    )
    assert await readable("<mailto:a@b.com|a@b.com> <https://e.com>") == "a@b.com https://e.com"


async def test_quoting_slack_text_back_escapes_it_exactly_once() -> None:
    wire = "is 3 &lt; 5 &amp;&amp; 7 &gt; 2?"
    assert to_mrkdwn(await readable(wire)) == wire
    assert unescape(to_mrkdwn("a < b && c")) == "a < b && c"


@pytest.mark.parametrize("convert", [to_mrkdwn, to_html])
def test_markdown_conversion_never_touches_link_targets(convert: object) -> None:
    assert callable(convert)
    out = convert("[p](https://e.com/*star*/x) and https://e.com/a_b_c_d/**x** *it*")
    assert "https://e.com/*star*/x" in out
    assert "https://e.com/a_b_c_d/**x**" in out
    assert "<i>star" not in out and "_star" not in out
    assert ("<i>it</i>" in out) or ("_it_" in out)  # emphasis outside links still converts


def test_the_telegram_reaction_set_follows_the_bot_api_fixture() -> None:
    assert set(ALLOWED_REACTIONS) == set(fixture("telegram", "reaction_type_emoji")["allowed"])
    assert allowed_reaction("👍") == "👍"
    assert allowed_reaction("❤️") == "❤"  # the variation selector dropped
    assert allowed_reaction("✅") == "👍" and allowed_reaction(":thumbsup:") == "👍"
    assert allowed_reaction("😂") == "🤣"
    with pytest.raises(ReactionNotAllowedError) as refused:
        allowed_reaction("🦀")
    assert "🦀" in str(refused.value) and "👍" in str(refused.value)
    assert not refused.value.retryable


def test_long_file_names_are_shortened_within_the_byte_limit_keeping_the_extension() -> None:
    long_name = "ä" * 300 + ".pdf"
    safe = safe_file_name(long_name, fallback="document")
    assert len(safe.encode()) <= 200 and safe.endswith(".pdf") and safe.startswith("ää")
    other = safe_file_name("ä" * 299 + "b.pdf", fallback="document")
    assert other != safe  # the digest keeps two long names apart
    assert safe_file_name("../../etc/passwd", fallback="f") == ".._.._etc_passwd"
    assert safe_file_name("..", fallback="f") == "f"
    assert safe_file_name("bad\udc80name.txt", fallback="f") == "bad?name.txt"
    assert safe_file_name("x" * 300, fallback="f").encode().__len__() <= 200


def row(seq: int, text: str, **content: object) -> InboundRow:
    return InboundRow(
        id=f"m{seq}",
        seq=seq,
        kind="chat",
        timestamp="2026-01-05T21:03:00+00:00",
        status="pending",
        trigger=1,
        platform_id="42",
        channel_type="telegram",
        thread_id=None,
        content={"text": text, "sender_name": "Alice", **content},
        process_after=None,
        on_wake=0,
        series_id=None,
        source_session_id=None,
    )


def test_the_formatter_renders_reply_to_and_the_quoted_text_escaped() -> None:
    reply = {"id": "7", "text": 'the <b>old</b> "one"', "sender": "Andy & co"}
    prompt = format_batch([row(4, "why?", reply_to=reply)], [], "UTC", reply_seqs={"m4": 3})
    assert 'reply_to="3"' in prompt  # the seq the agent knows the message by
    assert (
        '<quoted_message from="Andy &amp; co">the &lt;b&gt;old&lt;/b&gt; &quot;one&quot;'
        "</quoted_message>\nwhy?"
    ) in prompt
    unknown = format_batch([row(4, "why?", reply_to={"id": "7"})], [], "UTC")
    assert 'reply_to="7"' in unknown and "quoted_message" not in unknown
    plain = format_batch([row(4, "hi")], [], "UTC")
    assert "reply_to" not in plain
