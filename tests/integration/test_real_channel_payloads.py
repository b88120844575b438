"""Replays the REAL payloads in ``../shared/fixtures/channels/`` (copied from slack-bolt,
python-slack-sdk and a structured copy of the Telegram Bot API reference) through the adapters.

This is the second check on the project's own fixtures: a payload the platform's own
libraries publish must route (or be ignored) exactly as the fixture-built ones do. The
module is skipped, saying why, only when that folder is absent (CI always has it).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from nanoclaw.channels.cards import CALLBACK_DATA_MAX_BYTES
from nanoclaw.channels.telegram import adapter as telegram_adapter
from nanoclaw.channels.telegram.reactions import ALLOWED_REACTIONS
from nanoclaw.host import Host, build_host
from nanoclaw.settings import Settings
from tests.channel_helpers import until, user_rows
from tests.fakes.fixtures import fixture
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import FakeTelegram
from tests.helpers import make_agent, wire_chat
from tests.integration.test_slack_channel import slack_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
REAL = REPO_ROOT.parent / "shared" / "fixtures" / "channels"
pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(
        not REAL.is_dir(),
        reason=f"{REAL} is absent: the real platform payloads are not here to replay",
    ),
]


def real(channel: str, name: str) -> Any:
    data = json.loads((REAL / channel / f"{name}.json").read_text(encoding="utf-8"))
    assert data.get("source", {}).get("repo"), f"{name} names no source"
    return data.get("payload", data)


# -- Telegram: the Bot API reference the adapter and the fake must agree with ----------------
def test_telegram_limits_match_the_bot_api_reference() -> None:
    spec = real("telegram", "bot_api_spec_excerpt")
    assert set(ALLOWED_REACTIONS) == set(spec["ReactionTypeEmoji.emoji"])
    assert set(fixture("telegram", "reaction_type_emoji")["allowed"]) == set(
        spec["ReactionTypeEmoji.emoji"]
    )
    assert f"1-{CALLBACK_DATA_MAX_BYTES} bytes" in spec["InlineKeyboardButton.callback_data"]
    assert f"1-{telegram_adapter.MAX_TEXT_CHARS} characters" in spec["sendMessage.text"]
    assert "0-200 characters" in spec["answerCallbackQuery.text"]
    assert "inside this chat" in spec["Message.message_id"]  # ids are per chat, as the fake has
    assert "anonymous administrators" in spec["Message.sender_chat"]
    assert {"retry_after", "migrate_to_chat_id"} <= set(spec["ResponseParameters"])
    for kind in ("mention", "bot_command", "text_mention"):
        assert f'"{kind}"' in spec["MessageEntity.type"]


def test_the_telegram_fixtures_use_the_reference_field_names() -> None:
    spec = real("telegram", "bot_api_spec_excerpt")
    flood = fixture("telegram", "error_flood")
    assert set(flood["parameters"]) <= set(spec["ResponseParameters"])
    migrated = fixture("telegram", "error_migrated")
    assert set(migrated["parameters"]) <= set(spec["ResponseParameters"])
    fake = FakeTelegram()
    a, b = fake.message("x", chat_id=1), fake.message("y", chat_id=2)
    assert a["message_id"] == b["message_id"]  # "unique inside this chat", not globally


# -- Slack: the real events and envelopes through the real adapter and host -----------------
def test_the_slack_fixtures_have_the_real_payloads_shape() -> None:
    user_event = real("slack", "message_user")
    assert set(fixture("slack", "event_callback")) <= set(user_event) | {"is_ext_shared_channel"}
    assert set(fixture("slack", "event_message")) - {"channel_type"} <= set(user_event["event"])
    assert set(fixture("slack", "block_actions")) - {
        "message",
        "state",
        "enterprise",
        "is_enterprise_install",
    } <= set(real("slack", "block_actions_ephemeral"))
    assert set(fixture("slack", "socket_disconnect")) <= set(real("slack", "sdk_socket_disconnect"))
    assert set(fixture("slack", "socket_hello")) <= set(real("slack", "sdk_socket_hello"))
    envelope = next(e for e in real("slack", "sdk_socket_envelopes") if e["type"] == "events_api")
    assert set(fixture("slack", "socket_envelope")) - {"retry_attempt", "retry_reason"} <= set(
        envelope
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    server = FakeSlack(users={"W111": "Primary", "W222": "Second", "U111": "Ann", "U222": "Bo"})
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def host(settings: Settings, fake: FakeSlack) -> AsyncIterator[Host]:
    instance = build_host(slack_settings(settings, fake))
    await instance.start()
    await fake.wait_connected()
    andy = make_agent(instance.repo, "Andy")
    for chat, group in (("C111", True), ("D111", False)):
        wire_chat(instance.repo, andy, chat, channel="slack", is_group=group)
    try:
        yield instance
    finally:
        await instance.stop()


def rows_by_text(host: Host) -> dict[str, dict[str, Any]]:
    return {r["content"]["text"]: r for r in user_rows(host)}


async def test_real_slack_messages_route_and_bot_edit_delete_events_do_not(
    host: Host, fake: FakeSlack
) -> None:
    for name in ("message_bot", "message_classic_bot", "message_changed", "message_deleted"):
        await fake.push("events_api", real("slack", name))
    await fake.push("events_api", real("slack", "message_user"))
    # Ignored events return before their first await, so once the user message (sent last)
    # is routed, every earlier listener has already decided.
    rows = await until(lambda: rows_by_text(host), "the user's message")
    assert list(rows) == ["Hi there! Thanks for sharing the info!"]
    (row,) = rows.values()
    assert row["content"]["sender_id"] == "slack:W111"
    assert row["content"]["sender_name"] == "Primary"
    assert row["platform_id"] == "C111" and row["thread_id"] == "1610261659.001400"


async def test_a_real_thread_broadcast_carries_its_root_as_reply_context(
    host: Host, fake: FakeSlack
) -> None:
    await fake.push("events_api", real("slack", "message_thread_broadcast"))
    rows = await until(lambda: rows_by_text(host), "the broadcast")
    assert rows["Hi there!"]["content"]["reply_to"] == {
        "id": "1633663824.000500",
        "text": "Write in the thread :bow:",
        "sender": "Ann",
    }


async def test_a_real_dm_thread_reply_names_its_parent(host: Host, fake: FakeSlack) -> None:
    await fake.push_event(real("slack", "message_dm_thread_reply"))
    rows = await until(lambda: rows_by_text(host), "the DM reply")
    assert rows["When Slack was released?"]["content"]["reply_to"] == {
        "id": "1726133698.626339",
        "text": None,
        "sender": "Second",
    }


async def test_a_real_file_share_arrives_as_an_attachment(host: Host, fake: FakeSlack) -> None:
    payload = real("slack", "message_file_share")
    fake.files["file.png"] = b"\x89PNG real"
    for item in payload["event"]["files"]:  # the address only: tests never leave this machine
        item["url_private"] = item["url_private_download"] = fake.file_url("file.png")
    await fake.push("events_api", payload)
    rows = await until(lambda: rows_by_text(host), "the file share")
    (attachment,) = rows["Hi there!"]["content"]["attachments"]
    assert attachment["name"] == "file.png" and attachment["mime"] == "image/png"
    (session,) = host.repo.sessions()
    assert (host.sessions.layout(session).root / attachment["path"]).read_bytes() == (
        b"\x89PNG real"
    )


async def test_real_socket_mode_envelopes_and_the_real_disconnect(
    host: Host, fake: FakeSlack
) -> None:
    for envelope in real("slack", "sdk_socket_envelopes"):
        if envelope["type"] == "events_api":
            await fake._send_envelope(envelope, 10.0)  # exactly as python-slack-sdk's tests send it
    rows = await until(lambda: rows_by_text(host), "the app mention")
    assert "@Ann" in rows  # <@U111> resolved to a name
    before = fake.connections
    for ws in list(fake._sockets):
        await ws.send_str(json.dumps(real("slack", "sdk_socket_disconnect")))
    await until(lambda: fake.connections > before, "the reconnection after disconnect")
    adapter = host.channels.get("slack")
    assert adapter is not None
    await until(adapter.is_connected, "connected again")
