"""Telegram end to end: fake Bot API (long polling) → real host → real runner → Bot API calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from pydantic import SecretStr

from nanoclaw.channels.pairing import PAIRING_FILE, WELCOME_PROMPT, PairingCodes
from nanoclaw.channels.telegram.adapter import TelegramAdapter
from nanoclaw.channels.telegram.html import to_html
from nanoclaw.host import Host, build_host
from nanoclaw.settings import Settings
from tests.channel_helpers import wired_host
from tests.fakes.telegram import BOT_ID, BOT_USERNAME, FakeTelegram, markup
from tests.helpers import make_agent, wire_chat

MOCK = "(mock model, no API key configured) heard: "
GROUP = -1001
pytestmark = pytest.mark.timeout(60)


def tg_settings(settings: Settings, fake: FakeTelegram, **extra: Any) -> Settings:
    return settings.model_copy(
        update={
            "telegram_bot_token": SecretStr(fake.token),
            "telegram_api_base_url": fake.url,
            "telegram_poll_timeout_s": 1,
            **extra,
        }
    )


async def connected(host: Host) -> TelegramAdapter:
    adapter = host.channels.get("telegram")
    assert isinstance(adapter, TelegramAdapter)
    for _ in range(200):
        if adapter.is_connected():
            return adapter
        await asyncio.sleep(0.02)
    raise AssertionError("telegram never connected")


def tg_host(
    settings: Settings, tg: FakeTelegram, *, direct: list[str], groups: list[str]
) -> AbstractAsyncContextManager[Host]:
    """A host polling ``tg``: Andy answers the ``direct`` chats and mentions in the ``groups``."""
    return wired_host(
        tg_settings(settings, tg),
        channel="telegram",
        connected=connected,
        direct=direct,
        groups=groups,
    )


@pytest.fixture
async def host(settings: Settings, tg: FakeTelegram) -> AsyncIterator[Host]:
    async with tg_host(settings, tg, direct=["42"], groups=[str(GROUP)]) as instance:
        yield instance


def to_chat(chat_id: int) -> Any:
    return lambda c: int(c.params.get("chat_id", 0)) == chat_id


async def test_a_private_chat_is_answered_with_typing_while_the_turn_runs(
    host: Host, tg: FakeTelegram
) -> None:
    await tg.push({"message": tg.message("hello bot")})
    (reply,) = await tg.wait_for("sendMessage")
    assert reply.params["text"] == f"Andy {MOCK}hello bot"
    assert reply.params["parse_mode"] == "HTML"
    typing = tg.called("sendChatAction")
    assert typing and typing[0].params == {"chat_id": "42", "action": "typing"}
    assert tg.calls.index(typing[0]) < tg.calls.index(reply)


async def test_in_groups_only_mentions_and_replies_to_the_bot_engage(
    host: Host, tg: FakeTelegram
) -> None:
    group: dict[str, Any] = {"chat_id": GROUP, "chat_type": "supergroup"}
    await tg.push({"message": tg.message("just chatting", **group)})
    await tg.push({"message": tg.message(f"@{BOT_USERNAME} what time is it?", **group)})
    bot_message = {
        "message_id": 5,
        "from": {"id": BOT_ID, "is_bot": True, "first_name": "Andy"},
        "chat": {"id": GROUP, "type": "supergroup"},
        "date": 1,
        "text": "earlier",
    }
    await tg.push({"message": tg.message("thanks!", reply_to_message=bot_message, **group)})

    def both_answered(_call: Any) -> bool:
        said = " ".join(c.params["text"] for c in tg.called("sendMessage") if to_chat(GROUP)(c))
        return "what time is it?" in said and "thanks!" in said

    await tg.wait_for("sendMessage", where=both_answered)
    said = " ".join(c.params["text"] for c in tg.called("sendMessage"))
    assert "just chatting" not in said  # a plain group message does not engage


async def test_photos_and_documents_in_and_out(host: Host, tg: FakeTelegram) -> None:
    tg.files["ph-big"] = b"\x89PNG big"
    tg.files["doc-1"] = b"%PDF-1.4"
    await tg.push(
        {
            "message": tg.message(
                None,
                caption="!file summary.txt all done",
                photo=[
                    {"file_id": "ph-small", "file_size": 10, "width": 90},
                    {"file_id": "ph-big", "file_size": 900, "width": 1280},
                ],
                document={
                    "file_id": "doc-1",
                    "file_name": "spec.pdf",
                    "mime_type": "application/pdf",
                    "file_size": 8,
                },
            )
        }
    )
    (doc,) = await tg.wait_for("sendDocument")
    assert doc.files["document"] == ("summary.txt", b"all done")
    (session,) = host.repo.sessions()
    inbox = host.sessions.layout(session).inbox
    assert sorted(p.read_bytes() for p in inbox.rglob("*") if p.is_file()) == [
        b"%PDF-1.4",
        b"\x89PNG big",
    ]
    assert {c.params["file_id"] for c in tg.called("getFile")} == {"ph-big", "doc-1"}
    await tg.push({"message": tg.message("!file chart.png PNGDATA")})
    (photo,) = await tg.wait_for("sendPhoto")
    assert photo.files["photo"] == ("chart.png", b"PNGDATA")


async def test_edits_and_reactions(host: Host, tg: FakeTelegram) -> None:
    await tg.push({"message": tg.message("!edit done **now**")})
    (edit,) = await tg.wait_for("editMessageText")
    (draft,) = tg.called("sendMessage")
    assert edit.params["text"] == "done <b>now</b>" and edit.params["parse_mode"] == "HTML"
    assert edit.params["message_id"] == 101 or int(edit.params["message_id"]) > 0
    msg = tg.message("!react 👍")
    await tg.push({"message": msg})
    (reaction,) = await tg.wait_for("setMessageReaction")
    assert reaction.params["message_id"] == msg["message_id"]
    assert reaction.params["reaction"] == [{"type": "emoji", "emoji": "👍"}]
    assert draft.params["text"] == "Working on it…"


async def test_long_replies_split_at_4096_and_bad_formatting_falls_back_to_plain_text(
    host: Host, tg: FakeTelegram
) -> None:
    tg.reject_html = True
    await tg.push({"message": tg.message("<b>odd</b> " + "word " * 1200)})
    sent = await tg.wait_for("sendMessage", count=2, where=lambda c: "parse_mode" not in c.params)
    assert all(len(c.params["text"]) <= 4096 for c in sent)
    assert sum(c.params["text"].count("word") for c in sent) == 1200
    assert len(tg.called("sendMessage")) == 4  # each chunk: HTML refused, then plain accepted


async def test_a_question_card_is_an_inline_keyboard_answered_by_a_callback(
    host: Host, tg: FakeTelegram
) -> None:
    await tg.push({"message": tg.message("!ask Ship it? | Yes, ship | Not yet")})
    (card,) = await tg.wait_for("sendMessage", where=lambda c: "reply_markup" in c.params)
    keyboard = markup(card)["inline_keyboard"]
    assert [row[0]["text"] for row in keyboard] == ["Yes, ship", "Not yet"]
    assert all(len(row[0]["callback_data"].encode()) <= 64 for row in keyboard)
    card_message = {
        "message_id": 777,
        "chat": {"id": 42, "type": "private"},
        "date": 1,
        "text": card.params["text"],
        "reply_markup": markup(card),
    }
    await tg.push(
        {
            "callback_query": {
                "id": "cb1",
                "from": {"id": 42, "is_bot": False, "first_name": "Alice"},
                "message": card_message,
                "chat_instance": "x",
                "data": keyboard[0][0]["callback_data"],
            }
        }
    )
    (answer,) = await tg.wait_for("answerCallbackQuery")
    assert answer.params["callback_query_id"] == "cb1"
    (edited,) = await tg.wait_for("editMessageText")
    assert edited.params["message_id"] == 777 and "Yes, ship" in edited.params["text"]
    assert "reply_markup" not in edited.params  # the buttons are gone
    replies = await tg.wait_for("sendMessage", where=lambda c: "You chose" in c.params["text"])
    assert replies[0].params["text"] == "You chose: Yes, ship"


async def card_recorded(host: Host) -> None:
    for _ in range(250):
        if any(a.card_message_id for a in host.permissions.store.approvals()):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the approval card's message id was never recorded")


def click(tg: FakeTelegram, card: Any, index: int, *, query_id: str, user_id: int = 42) -> Any:
    """The callback_query Telegram sends when ``user_id`` presses button ``index`` of ``card``."""
    keyboard = markup(card)["inline_keyboard"]
    message = {
        "message_id": card.result["message_id"],
        "chat": {"id": int(card.params["chat_id"]), "type": "private"},
        "date": 1,
        "text": card.params["text"],
        "reply_markup": markup(card),
    }
    return {
        "callback_query": {
            "id": query_id,
            "from": {"id": user_id, "is_bot": False, "first_name": "Olive"},
            "message": message,
            "chat_instance": "x",
            "data": keyboard[index][0]["callback_data"],
        }
    }


async def test_an_approval_card_is_answered_by_its_button_even_after_a_host_restart(
    settings: Settings, tg: FakeTelegram
) -> None:
    config = tg_settings(settings, tg)
    first = build_host(config)
    await first.start()
    try:
        await connected(first)
        first.repo.upsert_user("telegram:42", kind="telegram", display_name="Olive")
        first.repo.grant_role("telegram:42", "owner", granted_by="test")
        andy = make_agent(first.repo, "Andy")
        group: dict[str, Any] = {"chat_id": -1002, "chat_type": "supergroup"}
        wire_chat(first.repo, andy, "-1002", channel="telegram", is_group=True,
                  policy="request_approval", engage_mode="mention", engage_pattern=None)  # fmt: skip
        await tg.push({"message": tg.message(f"@{BOT_USERNAME} hi there", user_id=55,
                                             first_name="Sam", **group)})  # fmt: skip
        (card,) = await tg.wait_for("sendMessage", where=lambda c: "reply_markup" in c.params)
        assert int(card.params["chat_id"]) == 42  # the owner's DM
        assert [r[0]["text"] for r in markup(card)["inline_keyboard"]] == ["Allow", "Deny"]
        unknown = first.repo.membership("telegram:55")
        assert unknown is not None and not unknown.member_of  # known, not yet a member
        await card_recorded(first)  # the send has returned: stopping now is a clean shutdown
    finally:
        await first.stop()
    second = build_host(config)  # a new host process's view: only what is on disk
    await second.start()
    try:
        await connected(second)
        await tg.push(click(tg, card, 0, query_id="cb-approve"))
        (answer,) = await tg.wait_for("answerCallbackQuery")
        assert "Approved" in answer.params["text"]
        (edited,) = await tg.wait_for("editMessageText")
        assert edited.params["message_id"] == card.result["message_id"]
        assert "Allow" in edited.params["text"] and "reply_markup" not in edited.params
        replay = await tg.wait_for("sendMessage", where=to_chat(-1002))
        assert replay[0].params["text"] == f"Andy {MOCK}@{BOT_USERNAME} hi there"
        membership = second.repo.membership("telegram:55")
        assert membership is not None and andy.id in membership.member_of
    finally:
        await second.stop()


async def test_pairing_code_makes_the_sender_owner_wires_the_dm_and_welcomes(
    settings: Settings, tg: FakeTelegram
) -> None:
    host = build_host(tg_settings(settings, tg))
    await host.start()
    try:
        await connected(host)
        andy = make_agent(host.repo, "Andy")
        code = PairingCodes(path=host.settings.data_path / PAIRING_FILE).issue("telegram", andy.id)
        await tg.push({"message": tg.message("WRONG-CODE", chat_id=7, user_id=7)})
        await tg.push(
            {
                "message": tg.message(
                    f"/start {code.replace('-', '')}", chat_id=7, user_id=7, first_name="Op"
                )
            }
        )
        (welcome,) = await tg.wait_for("sendMessage", where=to_chat(7))
        assert welcome.params["text"] == f"Andy {MOCK}{WELCOME_PROMPT}"
        membership = host.repo.membership("telegram:7")
        assert membership is not None and ("owner", None) in membership.roles
        assert host.permissions.store.admin_scope(andy.id) == "global"  # the owner's DM agent
        mg = host.repo.messaging_group("telegram", "7")
        assert mg is not None and [w.agent_group_id for w in host.repo.wirings_for(mg.id)] == [
            andy.id
        ]
        # the code is single-use: sending it again is an ordinary message now
        await tg.push({"message": tg.message(code, chat_id=7, user_id=7)})
        again = await tg.wait_for("sendMessage", count=2, where=to_chat(7))
        assert again[1].params["text"] == f"Andy {MOCK}{code}"
    finally:
        await host.stop()


def test_markdown_to_telegram_html() -> None:
    assert to_html("**b** _i_ ~~s~~ `a<b>`") == "<b>b</b> <i>i</i> <s>s</s> <code>a&lt;b&gt;</code>"
    assert to_html("[x](https://e.com/?a=1&b=2)") == '<a href="https://e.com/?a=1&amp;b=2">x</a>'
    assert to_html("1 < 2 & 3") == "1 &lt; 2 &amp; 3"
