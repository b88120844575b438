"""Discord end to end: fake Discord (gateway + REST) → discord.py → real host → real runner."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import SecretStr

from nanoclaw.channels.base import Card, CardOption, ChannelSetup, OutboundPayload, RouteReceipt
from nanoclaw.channels.discord.adapter import DiscordAdapter
from nanoclaw.channels.outbound import OutboundScheduler, RateLimits
from nanoclaw.channels.pairing import PAIRING_FILE, WELCOME_PROMPT, PairingCodes
from nanoclaw.cli.doctor import channel_credential_checks, channel_link_checks
from nanoclaw.cli.status import channel_states
from nanoclaw.errors import DeliveryDeferredError
from nanoclaw.host import Host, build_host
from nanoclaw.settings import Settings
from tests.channel_helpers import until, user_rows, wired_host
from tests.fakes.discord import (
    CHANNEL_ID,
    THREAD_ID,
    USER_ID,
    FakeDiscord,
)
from tests.helpers import make_agent, shared_executors

MOCK = "(mock model, no API key configured) heard: "
DM_CHANNEL = str(int(USER_ID) + 1)
pytestmark = pytest.mark.timeout(60)
SEND = "POST /channels/{id}/messages"


@pytest.fixture
async def dc() -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord(heartbeat_interval_ms=500)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def dc_settings(settings: Settings, fake: FakeDiscord) -> Settings:
    return settings.model_copy(
        update={
            "discord_bot_token": SecretStr(fake.token),
            "discord_api_base_url": fake.api_base_url,
            "discord_guild_ready_timeout_s": 0.2,
        }
    )


async def connected(host: Host) -> DiscordAdapter:
    adapter = host.channels.get("discord")
    assert isinstance(adapter, DiscordAdapter)
    await until(adapter.is_connected, "discord connected")
    return adapter


@pytest.fixture
async def host(settings: Settings, dc: FakeDiscord) -> AsyncIterator[Host]:
    async with wired_host(
        dc_settings(settings, dc),
        channel="discord",
        connected=connected,
        direct=[DM_CHANNEL],
        groups=[CHANNEL_ID],
    ) as instance:
        yield instance


@pytest.fixture
async def paired(settings: Settings, dc: FakeDiscord) -> AsyncIterator[Host]:
    """A started host with agent Andy and nothing wired, after the owner sent its pairing code in
    a DM and the welcome came back."""
    host = build_host(dc_settings(settings, dc))
    await host.start()
    try:
        await connected(host)
        andy = make_agent(host.repo, "Andy")
        code = PairingCodes(path=host.settings.data_path / PAIRING_FILE).issue("discord", andy.id)
        await dc.send_message(dc.message(code, channel_id=DM_CHANNEL, dm=True))
        await until(lambda: dc.sent(DM_CHANNEL), "the welcome")
        yield host
    finally:
        await host.stop()


def texts(dc: FakeDiscord, channel_id: str) -> list[str]:
    return [str(c.params.get("content") or "") for c in dc.sent(channel_id)]


async def test_a_mention_in_a_server_channel_is_answered_in_that_channel(
    host: Host, dc: FakeDiscord
) -> None:
    await dc.send_message(dc.message("just chatting"))
    await dc.send_message(dc.message("what time is it?", mention_bot=True))
    await dc.send_message(dc.message("and you?", mention_role=True))

    def both_answered() -> bool:
        said = " ".join(texts(dc, CHANNEL_ID))
        return "@andy what time is it?" in said and "@Andy and you?" in said

    await until(both_answered, "both mentions (of the bot, of its role) answered")
    said = texts(dc, CHANNEL_ID)
    assert said[0].startswith(f"Andy {MOCK}")
    assert "just chatting" not in " ".join(said)  # a plain channel message does not engage
    typing = dc.called("POST /channels/{id}/typing")
    assert typing and typing[0].path == f"/channels/{CHANNEL_ID}/typing"
    assert typing[0].at <= dc.sent(CHANNEL_ID)[0].at
    # the gateway as Discord speaks it: zlib-stream, IDENTIFY with Message Content, heartbeats
    assert dc.compress == ["zlib-stream"]
    (identify,) = dc.identified()
    assert identify.d["intents"] & (1 << 15)
    assert dc.heartbeats()
    rows = {r["content"]["text"]: r for r in user_rows(host)}
    assert rows["@andy what time is it?"]["platform_id"] == CHANNEL_ID


async def test_a_dm_is_answered_and_attachments_go_both_ways(host: Host, dc: FakeDiscord) -> None:
    msg = dc.message(
        "!file notes.txt all done",
        channel_id=DM_CHANNEL,
        dm=True,
        attachments={"spec.pdf": b"%PDF-1.4", "photo.png": b"\x89PNG"},
    )
    await dc.send_message(msg)
    (upload,) = await dc.wait_for(SEND, where=lambda c: bool(c.files))
    assert upload.path == f"/channels/{DM_CHANNEL}/messages"
    assert list(upload.files.values()) == [("notes.txt", b"all done")]
    (session,) = host.repo.sessions()
    inbox = host.sessions.layout(session).inbox
    assert sorted(p.read_bytes() for p in inbox.rglob("*") if p.is_file()) == [
        b"%PDF-1.4",
        b"\x89PNG",
    ]


async def test_a_thread_is_answered_in_the_thread(host: Host, dc: FakeDiscord) -> None:
    await dc.send_message(dc.message("in the thread", channel_id=THREAD_ID, mention_bot=True))
    await until(lambda: texts(dc, THREAD_ID), "the answer in the thread")
    assert texts(dc, THREAD_ID) == [f"Andy {MOCK}@andy in the thread"]
    assert texts(dc, CHANNEL_ID) == []
    (row,) = user_rows(host)
    assert row["platform_id"] == CHANNEL_ID and row["thread_id"] == THREAD_ID


async def test_a_reply_to_the_bot_engages_and_carries_its_context(
    host: Host, dc: FakeDiscord
) -> None:
    await dc.send_message(dc.message("hello", mention_bot=True))
    await until(lambda: dc.sent(CHANNEL_ID), "the first answer")
    bot_message = dict(dc.sent(CHANNEL_ID)[0].result, guild_id="1200000000000000001")
    await dc.send_message(dc.message("which one?", reply_to=bot_message))
    await until(lambda: len(dc.sent(CHANNEL_ID)) == 2, "the answer to the reply")
    reply_to = user_rows(host)[-1]["content"]["reply_to"]
    assert reply_to == {
        "id": bot_message["id"],
        "text": f"Andy {MOCK}@andy hello",
        "sender": "andy",
    }


async def test_long_replies_are_split_at_2000_characters(host: Host, dc: FakeDiscord) -> None:
    await dc.send_message(dc.message("word " * 900, channel_id=DM_CHANNEL, dm=True))
    await until(lambda: len(dc.sent(DM_CHANNEL)) >= 3, "a reply in three parts")
    sent = texts(dc, DM_CHANNEL)
    assert all(len(t) <= 2000 for t in sent) and len(sent) == 3
    assert sum(t.count("word") for t in sent) == 900


async def test_a_card_is_buttons_and_a_click_answers_it(host: Host, dc: FakeDiscord) -> None:
    await dc.send_message(
        dc.message("!ask Ship it? | Yes, ship | Not yet", channel_id=DM_CHANNEL, dm=True)
    )
    (card,) = await dc.wait_for(SEND, where=lambda c: bool(c.params.get("components")))
    buttons = card.params["components"][0]["components"]
    assert [b["label"] for b in buttons] == ["Yes, ship", "Not yet"]
    assert all(len(b["custom_id"]) <= 100 for b in buttons)
    interaction_id = await dc.click(card, 0)
    (callback,) = await dc.wait_for("POST /interactions/{id}/{token}/callback")
    assert callback.path.startswith(f"/interactions/{interaction_id}/")
    assert callback.params["type"] == 7  # UPDATE_MESSAGE: the card becomes its answer
    assert "Yes, ship" in callback.params["data"]["content"]
    assert callback.params["data"]["components"] == []
    await until(
        lambda: "You chose: Yes, ship" in texts(dc, DM_CHANNEL), "the agent heard the answer"
    )


async def test_a_429_is_waited_out_for_its_retry_after(host: Host, dc: FakeDiscord) -> None:
    dc.rate_limit(SEND, 0.6)
    await dc.send_message(dc.message("hi", channel_id=DM_CHANNEL, dm=True))
    await until(lambda: dc.sent(DM_CHANNEL), "the reply after the rate limit")
    limited, accepted = [c for c in dc.called(SEND) if c.path.endswith(f"{DM_CHANNEL}/messages")]
    assert limited.status == 429 and accepted.status == 200
    assert accepted.at - limited.at >= 0.6
    assert texts(dc, DM_CHANNEL) == [f"Andy {MOCK}hi"]  # sent once


async def test_a_long_429_defers_the_delivery_through_the_scheduler(dc: FakeDiscord) -> None:
    adapter = DiscordAdapter(
        blocking=shared_executors().blocking,
        bot_token=dc.token,
        api_base_url=dc.api_base_url,
        guild_ready_timeout_s=0.1,
        outbound=OutboundScheduler(
            channel="discord",
            limits=RateLimits(
                per_chat_per_s=100, per_chat_burst=100, channel_per_s=100, channel_burst=100
            ),
        ),
    )

    async def inbound(_event: Any) -> RouteReceipt | None:
        return None

    await adapter.setup(ChannelSetup(on_inbound=inbound))
    try:
        dc.rate_limit(SEND, 40.0)
        with pytest.raises(DeliveryDeferredError) as raised:
            await adapter.deliver(
                DM_CHANNEL, None, OutboundPayload(kind="chat", content={"text": "later"})
            )
        assert raised.value.retry_after_s > 30
        assert adapter.outbound.blocked_for_s(DM_CHANNEL) > 30
        assert adapter.outbound.blocked_for_s(CHANNEL_ID) == 0  # other chats go on
        assert [c.status for c in dc.called(SEND)] == [429]
    finally:
        await adapter.teardown()


async def test_after_a_drop_the_bot_resumes_and_gets_what_it_missed(
    host: Host, dc: FakeDiscord
) -> None:
    adapter = await connected(host)
    (identify,) = dc.identified()
    dc.drop()
    await dc.send_message(dc.message("while you were away", channel_id=DM_CHANNEL, dm=True))
    await until(lambda: dc.resumes(), "a RESUME")
    (resume,) = dc.resumes()
    assert resume.d["session_id"] == "session-1" and resume.d["seq"] >= 2
    await until(lambda: dc.sent(DM_CHANNEL), "the missed message answered")
    assert texts(dc, DM_CHANNEL) == [f"Andy {MOCK}while you were away"]
    assert len(dc.identified()) == 1  # resumed, not re-identified
    await until(adapter.is_connected, "connected again")
    assert identify.connection == 1 and resume.connection == 2


async def test_close_4014_names_the_message_content_intent_and_the_fix(
    settings: Settings, dc: FakeDiscord
) -> None:
    dc.message_content_intent = False
    host = build_host(dc_settings(settings, dc))
    await host.start()
    try:

        def failed() -> str:
            state = {s.name: s for s in host.channels.states()}.get("discord")
            return state.detail if state is not None and state.state == "retrying" else ""

        detail = await until(failed, "the discord channel failing")
        assert dc.close_codes[0] == 4014
        assert "4014" in detail and "Message Content" in detail
        assert "Developer Portal" in detail and "Privileged Gateway Intents" in detail
        assert not detail.endswith("...")  # the whole fix fits the state line (200 chars)
        identify = dc.identified()[0]  # (the registry retries: there may be more by now)
        assert identify.d["intents"] & (1 << 15)  # it asked for Message Content
        (row,) = [r for r in channel_states(host.settings) if r["channel"] == "discord"]
        assert row["state"] == "retrying" and "4014" in row["detail"]  # nanoclaw status
        (check,) = channel_link_checks(host.settings)  # nanoclaw doctor, host running
        assert not check.ok and "Privileged Gateway Intents" in check.detail
    finally:
        await host.stop()


async def test_pairing_code_in_a_dm_makes_the_sender_owner_and_welcomes(
    paired: Host, dc: FakeDiscord
) -> None:
    assert texts(dc, DM_CHANNEL) == [f"Andy {MOCK}{WELCOME_PROMPT}"]
    membership = paired.repo.membership(f"discord:{USER_ID}")
    assert membership is not None and ("owner", None) in membership.roles
    assert paired.repo.messaging_group("discord", DM_CHANNEL) is not None


async def test_agent_edits_and_reactions_and_people_s_edits_are_ignored(
    host: Host, dc: FakeDiscord
) -> None:
    await dc.send_message(dc.message("!edit done now", channel_id=DM_CHANNEL, dm=True))
    (edit,) = await dc.wait_for("PATCH /channels/{id}/messages/{id}")
    (draft,) = dc.sent(DM_CHANNEL)
    assert draft.params["content"] == "Working on it…"
    assert edit.path == f"/channels/{DM_CHANNEL}/messages/{draft.result['id']}"
    assert edit.params["content"] == "done now"
    msg = dc.message("!react 👍", channel_id=DM_CHANNEL, dm=True)
    await dc.send_message(msg)
    (reaction,) = await dc.wait_for("PUT /channels/{id}/messages/{id}/reactions/{emoji}/@me")
    assert reaction.path.startswith(f"/channels/{DM_CHANNEL}/messages/{msg['id']}/reactions/")
    # A person's edit (MESSAGE_UPDATE) is not read: only the next new message is answered.
    await dc.dispatch("MESSAGE_UPDATE", {**msg, "content": "edited text"})
    await dc.send_message(dc.message("next", channel_id=DM_CHANNEL, dm=True))
    await until(lambda: any("next" in t for t in texts(dc, DM_CHANNEL)), "the next answer")
    assert not any("edited text" in t for t in texts(dc, DM_CHANNEL))
    assert "edited text" not in [r["content"]["text"] for r in user_rows(host)]


async def test_after_pairing_the_first_server_mention_is_answered_in_that_channel(
    paired: Host, dc: FakeDiscord
) -> None:
    """The new user's path: pair in a DM, mention the bot in a server, connect it, get the answer."""
    await dc.send_message(dc.message("hello team", mention_bot=True))
    (card,) = await dc.wait_for(SEND, where=lambda c: bool(c.params.get("components")))
    assert card.path == f"/channels/{DM_CHANNEL}/messages"  # the owner's DM (create DM)
    assert str(dc.called("POST /users/@me/channels")[0].params["recipient_id"]) == USER_ID
    labels = [b["label"] for b in card.params["components"][0]["components"]]
    assert labels[0] == "Connect to Andy"
    await dc.click(card, 0)
    await until(lambda: texts(dc, CHANNEL_ID), "the answer in the server channel")
    assert texts(dc, CHANNEL_ID) == [f"Andy {MOCK}@andy hello team"]


async def test_doctor_without_a_host_tries_the_token_and_the_intent(
    settings: Settings, dc: FakeDiscord
) -> None:
    config = dc_settings(settings, dc)
    (check,) = await asyncio.to_thread(channel_credential_checks, config)
    assert check.name == "channel discord" and check.ok and check.detail == "connected as @andy"
    dc.message_content_intent = False
    (check,) = await asyncio.to_thread(channel_credential_checks, config)
    assert not check.ok
    assert "Message Content Intent" in check.detail and "Privileged Gateway Intents" in check.detail
    assert "enter new credentials" not in check.detail  # the token is fine; the toggle is not


async def test_a_card_that_does_not_fit_buttons_is_numbered_text(dc: FakeDiscord) -> None:
    adapter = DiscordAdapter(
        blocking=shared_executors().blocking,
        bot_token=dc.token,
        api_base_url=dc.api_base_url,
        guild_ready_timeout_s=0.1,
    )

    async def inbound(_event: Any) -> RouteReceipt | None:
        return None

    await adapter.setup(ChannelSetup(on_inbound=inbound))
    try:
        many = Card(
            "q-many", "Pick", "Which one?", tuple(CardOption(f"o{i}", f"v{i}") for i in range(26))
        )
        await adapter.deliver(DM_CHANNEL, None, many.payload())
        long_id = Card("q-" + "x" * 100, "Pick", "Which?", (CardOption("a", "a"),))
        await adapter.deliver(DM_CHANNEL, None, long_id.payload())
        first, second = dc.sent(DM_CHANNEL)
        assert first.params["content"] == many.fallback_text() and not first.params.get(
            "components"
        )
        assert "26. o25" in first.params["content"]
        assert second.params["content"] == long_id.fallback_text()
    finally:
        await adapter.teardown()
