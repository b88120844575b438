"""Telegram against the Bot API's real shapes and limits: fixture-built updates through the real
host and runner, flood control, media, service messages, forums, entities, webhooks, reactions."""

from __future__ import annotations

import html
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from agent_runner.formatter import format_batch
from agent_runner.rows import InboundRow

from nanoclaw.channels.registry import STATE_FILE, read_states
from nanoclaw.cli.doctor import channel_link_checks
from nanoclaw.host import Host, build_host
from nanoclaw.settings import Settings
from tests.channel_helpers import deliveries, inbound_rows, until, user_rows
from tests.fakes.telegram import BOT_ID, BOT_USERNAME, FakeTelegram
from tests.helpers import make_agent, wire_chat
from tests.integration.test_telegram_channel import MOCK, connected, tg_host, tg_settings, to_chat

GROUP = -1001
FORUM = -1002
pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def host(settings: Settings, tg: FakeTelegram) -> AsyncIterator[Host]:
    groups = [str(chat) for chat in (GROUP, FORUM, -300)]
    async with tg_host(settings, tg, direct=["42", "43"], groups=groups) as instance:
        yield instance


def sent_to(tg: FakeTelegram, chat: int) -> list[str]:
    return [str(c.params.get("text")) for c in tg.called("sendMessage") if to_chat(chat)(c)]


def as_row(raw: dict[str, Any]) -> InboundRow:
    return InboundRow(
        id=raw["id"],
        seq=raw["seq"],
        kind=raw["kind"],
        timestamp=raw["timestamp"],
        status=raw["status"],
        process_after=None,
        trigger=raw["trigger"],
        channel_type=raw["channel_type"],
        platform_id=raw["platform_id"],
        thread_id=raw["thread_id"],
        content=raw["content"],
        on_wake=0,
        series_id=None,
        source_session_id=None,
    )


MEDIA = {
    "message_voice": ("voice-", ".ogg", "audio/ogg"),
    "message_audio": ("song", ".mp3", "audio/mpeg"),
    "message_video": ("clip", ".mp4", "video/mp4"),
    "message_video_note": ("video-note-", ".mp4", "video/mp4"),
    "message_animation": ("funny", ".mp4", "video/mp4"),
    "message_sticker": ("sticker-", ".webp", "image/webp"),
    "message_document": ("spec", ".pdf", "application/pdf"),
    "message_photo": ("photo-", ".jpg", "image/jpeg"),
}


async def test_every_media_kind_arrives_as_an_attachment_or_readable_text(
    host: Host, tg: FakeTelegram
) -> None:
    for name in MEDIA:
        await tg.push({"message": tg.from_fixture(name, data=f"bytes of {name}".encode())})
    for name in ("message_location", "message_contact", "message_poll"):
        await tg.push({"message": tg.from_fixture(name)})
    rows = await until(lambda: len(user_rows(host)) == 11 and user_rows(host), "11 rows")
    by_kind = dict(zip([*MEDIA, "location", "contact", "poll"], rows, strict=True))
    for name, (prefix, suffix, mime) in MEDIA.items():
        (attachment,) = by_kind[name]["content"]["attachments"]
        assert attachment["name"].startswith(prefix) and attachment["name"].endswith(suffix)
        assert attachment["mime"] == mime, name
        (session,) = host.repo.sessions()
        saved = host.sessions.layout(session).root / attachment["path"]
        assert saved.read_bytes() == f"bytes of {name}".encode()  # one file, even for animations
    assert by_kind["message_sticker"]["content"]["text"] == "[sticker 😂]"
    assert by_kind["location"]["content"]["text"] == "[location: 52.520008, 13.404954]"
    assert by_kind["contact"]["content"]["text"] == "[contact: Bob Builder, +49301234567]"
    assert by_kind["poll"]["content"]["text"] == "[poll: Lunch? — options: Pizza / Sushi]"
    # What the agent reads for a voice note: an audio attachment, not "(nothing)".
    prompt = format_batch([as_row(by_kind["message_voice"])], [], "UTC")
    assert "[audio/ogg: voice-" in prompt and ".ogg — saved to inbox/" in prompt


async def test_service_messages_never_wake_an_agent(host: Host, tg: FakeTelegram) -> None:
    group: dict[str, Any] = {"chat_id": GROUP, "chat_type": "supergroup"}
    for name in ("service_pinned_message", "service_new_chat_members"):
        await tg.push({"message": tg.from_fixture(name, **group)})
    await tg.push(
        {
            "message": tg.from_fixture(
                "service_forum_topic_created", chat_id=FORUM, chat_type="supergroup", thread=1
            )
        }
    )
    await tg.push({"message": tg.message(f"@{BOT_USERNAME} after the pin", **group)})
    await until(lambda: sent_to(tg, GROUP), "the answer to the real message")
    assert [r["content"]["text"] for r in user_rows(host)] == [f"@{BOT_USERNAME} after the pin"]
    assert sent_to(tg, GROUP) == [f"Andy {MOCK}@{BOT_USERNAME} after the pin"]
    assert sent_to(tg, FORUM) == []


async def test_a_group_migrated_to_a_supergroup_is_rewired_to_its_new_id(
    host: Host, tg: FakeTelegram
) -> None:
    before = host.repo.messaging_group("telegram", "-300")
    assert before is not None
    await tg.push(
        {"message": tg.from_fixture("service_migrate_to_chat_id", chat_id=-300, chat_type="group")}
    )
    await until(lambda: host.repo.messaging_group("telegram", "-1003"), "the re-wired chat")
    after = host.repo.messaging_group("telegram", "-1003")
    assert after is not None and after.id == before.id
    assert host.repo.messaging_group("telegram", "-300") is None
    await tg.push(
        {
            "message": tg.message(
                f"@{BOT_USERNAME} still there?", chat_id=-1003, chat_type="supergroup"
            )
        }
    )
    await until(lambda: sent_to(tg, -1003), "the answer in the supergroup")
    assert sent_to(tg, -1003) == [f"Andy {MOCK}@{BOT_USERNAME} still there?"]


async def test_a_send_to_a_migrated_group_follows_it(host: Host, tg: FakeTelegram) -> None:
    tg.migrated[-300] = -1003  # the old id now answers 400 with migrate_to_chat_id
    await tg.push({"message": tg.message(f"@{BOT_USERNAME} hi", chat_id=-300, chat_type="group")})
    await until(lambda: sent_to(tg, -1003), "the reply at the new id")
    assert host.repo.messaging_group("telegram", "-1003") is not None


async def test_forum_topics_are_threads_with_their_own_sessions(
    host: Host, tg: FakeTelegram
) -> None:
    forum: dict[str, Any] = {"chat_id": FORUM, "chat_type": "supergroup"}
    await tg.push({"message": tg.message(f"@{BOT_USERNAME} in five", thread=5, **forum)})
    await tg.push({"message": tg.message(f"@{BOT_USERNAME} in nine", thread=9, **forum)})
    await until(lambda: len(sent_to(tg, FORUM)) == 2, "both topic replies")
    threads = {
        str(c.params["text"]).rsplit(" ", 1)[-1]: c.params.get("message_thread_id")
        for c in tg.called("sendMessage")
        if to_chat(FORUM)(c)
    }
    assert threads == {"five": 5, "nine": 9}  # each reply lands in its topic, not General
    typing = {c.params.get("message_thread_id") for c in tg.called("sendChatAction")}
    assert {5, 9} <= typing
    rows = user_rows(host)
    assert {r["thread_id"] for r in rows} == {"5", "9"}
    assert len({r["session_id"] for r in rows}) == 2  # every topic is its own session
    assert all("reply_to" not in r["content"] for r in rows)  # the topic root is no reply
    await tg.push({"message": tg.message(f"@{BOT_USERNAME} !ask Ship? | Yes | No", thread=9,
                                         **forum)})  # fmt: skip
    (card,) = await tg.wait_for("sendMessage", where=lambda c: "reply_markup" in c.params)
    assert card.params["message_thread_id"] == 9  # the card goes to the topic too


async def test_mentions_come_from_message_entities(host: Host, tg: FakeTelegram) -> None:
    group: dict[str, Any] = {"chat_id": GROUP, "chat_type": "supergroup"}
    await tg.push({"message": tg.message(f"@{BOT_USERNAME}_fan is not me", **group)})
    await tg.push({"message": tg.message(f"/weather@{BOT_USERNAME} now", **group)})
    text_mention = tg.message("Andy, hi", **group)
    text_mention["entities"] = [
        {
            "type": "text_mention",
            "offset": 0,
            "length": 4,
            "user": {"id": BOT_ID, "is_bot": True, "first_name": "Andy"},
        }
    ]
    await tg.push({"message": text_mention})
    await tg.push({"message": tg.message(f"plain, then @{BOT_USERNAME}", **group)})
    # Updates are handled in order: once the last one is routed, the first was decided too.
    await until(lambda: len(user_rows(host)) == 3, "three engaged messages")
    heard = [r["content"]["text"] for r in user_rows(host)]
    assert heard == ["/weather now", "Andy, hi", f"plain, then @{BOT_USERNAME}"]


async def test_an_anonymous_admin_speaks_as_the_group_admin(host: Host, tg: FakeTelegram) -> None:
    msg = tg.from_fixture("message_anonymous_admin", chat_id=GROUP, chat_type="supergroup")
    msg["sender_chat"]["id"] = GROUP
    await tg.push({"message": msg})
    await until(lambda: sent_to(tg, GROUP), "the answer to the admin")
    (row,) = user_rows(host)
    assert row["content"]["sender_id"] == f"telegram:admin-of-{GROUP}"
    assert row["content"]["sender_name"] == "Team (anonymous admin)"


async def test_reactions_use_the_allowed_set_or_tell_the_agent(
    host: Host, tg: FakeTelegram
) -> None:
    await tg.push({"message": tg.message("!react ✅")})
    (reaction,) = await tg.wait_for("setMessageReaction")
    assert reaction.params["reaction"] == [{"type": "emoji", "emoji": "👍"}]
    await tg.push({"message": tg.message("!react 🦀")})
    notice = await until(
        lambda: [r for r in inbound_rows(host) if "Delivery failed" in str(r["content"])],
        "the agent's notice",
    )
    assert "can react only with" in notice[0]["content"]["text"]
    assert len(tg.called("setMessageReaction")) == 1  # nothing sent that would answer 400


async def test_message_ids_reused_by_two_chats_of_a_shared_session_both_arrive(
    settings: Settings, tg: FakeTelegram
) -> None:
    host = build_host(tg_settings(settings, tg))
    await host.start()
    try:
        await connected(host)
        andy = make_agent(host.repo, "Andy")
        for chat in ("42", "43"):
            wire_chat(host.repo, andy, chat, channel="telegram", session_mode="agent-shared")
        first, second = tg.message("from 42", chat_id=42), tg.message("from 43", chat_id=43)
        assert first["message_id"] == second["message_id"] == 1  # ids are per chat
        await tg.push({"message": first})
        await tg.push({"message": second})
        rows = await until(lambda: len(user_rows(host)) == 2 and user_rows(host), "both rows")
        assert sorted(r["content"]["text"] for r in rows) == ["from 42", "from 43"]
        assert {r["platform_id"] for r in rows} == {"42", "43"}
        assert len({r["session_id"] for r in rows}) == 1  # one shared session, two rows
        assert {r["content"]["platform_message_id"] for r in rows} == {"1"}
    finally:
        await host.stop()


async def test_a_flood_wait_is_honoured_per_chat_without_counting_attempts(
    host: Host, tg: FakeTelegram
) -> None:
    # Longer than the scheduler waits inline (the row is deferred), and long enough that the
    # other chat's whole turn (a runner start under load) fits inside the wait.
    tg.flood(42, 15)
    await tg.push({"message": tg.message("first")})
    await until(lambda: [c for c in tg.called("sendMessage") if to_chat(42)(c)], "the 429")
    await tg.push({"message": tg.message("other chat", chat_id=43, user_id=43)})
    await until(lambda: sent_to(tg, 43), "the other chat's answer")
    # chat 42 is still waiting (its one call was refused) while chat 43 was answered
    assert [c.result for c in tg.called("sendMessage") if to_chat(42)(c)] == [None]
    await until(
        lambda: [c for c in tg.called("sendMessage") if to_chat(42)(c) and c.result],
        "the retried send after retry_after",
        within_s=45,
    )
    delivered = [d for d in deliveries(host) if d["status"] == "delivered"]
    assert len(delivered) == 2
    assert all(d["attempts"] == 1 for d in delivered)  # the wait was not an attempt
    hits = [c for c in tg.called("sendMessage") if to_chat(42)(c)]
    assert len(hits) == 2  # one refused with 429, one after the wait: no send into the wait


async def test_a_flood_wait_beyond_one_hour_fails_the_message_with_a_notice(
    host: Host, tg: FakeTelegram
) -> None:
    tg.flood(42, 7200)
    await tg.push({"message": tg.message("hello")})
    notice = await until(
        lambda: [r for r in inbound_rows(host) if "Delivery failed" in str(r["content"])],
        "the agent's failure notice",
    )
    assert re.search(r"for 7[12]\d\d s, longer than the 3600 s", notice[0]["content"]["text"])
    await until(
        lambda: len([d for d in deliveries(host) if d["status"] == "failed"]) == 2,
        "the reply to the notice failing too",
    )
    # The reply the notice provoked did not go into the same wait: one API call in all.
    assert len([c for c in tg.called("sendMessage") if to_chat(42)(c)]) == 1


async def test_a_leftover_webhook_is_deleted_before_polling_and_said(
    settings: Settings, tg: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    tg.webhook_url = "https://old.example.com/hook?secret=x"
    caplog.set_level(logging.WARNING, logger="nanoclaw.channels.telegram")
    host = build_host(tg_settings(settings, tg))
    await host.start()
    try:
        await connected(host)
        assert [c.method for c in tg.calls][:3] == ["getMe", "getWebhookInfo", "deleteWebhook"]
        assert tg.webhook_url == "" and tg.conflicts == 0  # polling never met the 409
        assert any("deleted it so long polling" in r.getMessage() for r in caplog.records)
        assert not any("secret" in r.getMessage() for r in caplog.records)
        andy = make_agent(host.repo, "Andy")
        wire_chat(host.repo, andy, "42", channel="telegram")
        await tg.push({"message": tg.message("hello")})
        await until(lambda: sent_to(tg, 42), "the answer")
    finally:
        await host.stop()


async def test_a_409_conflict_shows_in_status_and_doctor(
    host: Host, tg: FakeTelegram, settings: Settings
) -> None:
    tg.other_poller = True
    state_path = host.settings.data_path / STATE_FILE

    def telegram_state() -> dict[str, Any]:
        return dict(((read_states(state_path) or {}).get("channels") or {}).get("telegram") or {})

    state = await until(
        lambda: telegram_state().get("state") == "conflict" and telegram_state(),
        "the conflict state",
    )
    assert "409 Conflict" in state["detail"]
    (check,) = channel_link_checks(tg_settings(settings, tg))
    assert check.name == "channel telegram" and not check.ok and "conflict" in check.detail
    tg.other_poller = False
    await until(lambda: telegram_state().get("state") == "connected", "the recovery")
    (check,) = channel_link_checks(tg_settings(settings, tg))
    assert check.ok


async def test_a_reply_carries_the_replied_to_message_to_the_agent(
    host: Host, tg: FakeTelegram
) -> None:
    await tg.push({"message": tg.message("hello")})
    await until(lambda: sent_to(tg, 42), "the first answer")
    (bot_reply,) = [c.result for c in tg.called("sendMessage") if to_chat(42)(c)]
    await tg.push({"message": tg.message("!prompt which one?", reply_to_message=bot_reply)})
    await until(lambda: len(sent_to(tg, 42)) == 2, "the answer to the reply")
    reply_to = user_rows(host)[-1]["content"]["reply_to"]
    assert reply_to == {
        "id": str(bot_reply["message_id"]),
        "text": f"Andy {MOCK}hello",
        "sender": "Andy",
    }
    prompt = html.unescape(sent_to(tg, 42)[-1])  # what the model read, echoed by !prompt
    seq = re.search(r'reply_to="(\d+)"', prompt)
    assert seq is not None
    assert int(seq.group(1)) % 2 == 1  # the seq of the agent's own (outbound) message
    assert f'<quoted_message from="Andy">Andy {MOCK}hello</quoted_message>' in prompt
