"""Bad input at the Telegram door: a 300-character file name is shortened safely before the
update is acknowledged, and an update that still cannot be handled is told to its sender."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from nanoclaw.channels.base import InboundEvent, RouteReceipt
from nanoclaw.host import Host, build_host
from nanoclaw.settings import Settings
from tests.channel_helpers import until, user_rows
from tests.fakes.telegram import FakeTelegram
from tests.helpers import make_agent, wire_chat
from tests.integration.test_telegram_channel import connected, tg_settings, to_chat

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def host(settings: Settings, tg: FakeTelegram) -> AsyncIterator[Host]:
    instance = build_host(tg_settings(settings, tg))
    await instance.start()
    await connected(instance)
    wire_chat(instance.repo, make_agent(instance.repo, "Andy"), "42", channel="telegram")
    try:
        yield instance
    finally:
        await instance.stop()


@pytest.mark.parametrize("stem", ["a" * 300, "ü" * 300, "报告" * 150])
async def test_a_300_character_file_name_is_shortened_before_the_update_is_acknowledged(
    host: Host, tg: FakeTelegram, stem: str
) -> None:
    msg = tg.from_fixture("message_document", data=b"%PDF-1.4 long", caption="see attached")
    msg["document"]["file_name"] = stem + ".pdf"  # the name the platform allows
    update_id = await tg.push({"message": msg})
    (row,) = await until(lambda: user_rows(host), "the routed message")
    (attachment,) = row["content"]["attachments"]
    name = attachment["name"]
    assert len(name.encode()) <= 200 and name.endswith(".pdf") and name.startswith(stem[:20])
    (session,) = host.repo.sessions()
    saved = host.sessions.layout(session).root / attachment["path"]
    assert saved.read_bytes() == b"%PDF-1.4 long"
    # Acknowledged only now: the next getUpdates confirms it, and the message is not lost.
    await until(lambda: update_id not in [u["update_id"] for u in tg.unconfirmed()], "the ack")
    assert row["content"]["text"] == "see attached"


async def test_an_update_that_cannot_be_handled_is_told_to_its_sender(
    host: Host, tg: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = host.on_inbound
    failures: list[InboundEvent] = []

    async def failing_once(event: InboundEvent) -> RouteReceipt:
        if not failures:
            failures.append(event)
            raise OSError(36, "File name too long")  # what a too-long name used to raise
        return await real(event)

    adapter = host.channels.get("telegram")
    assert adapter is not None and adapter._setup is not None  # type: ignore[attr-defined]
    monkeypatch.setattr(adapter._setup, "on_inbound", failing_once)  # type: ignore[attr-defined]
    await tg.push({"message": tg.message("first")})
    notices = await until(
        lambda: [c for c in tg.called("sendMessage") if to_chat(42)(c)], "the sender's notice"
    )
    assert notices[0].params["text"] == (
        "Your message could not be handled (OSError); please send it again."
    )
    await tg.push({"message": tg.message("second")})  # the channel keeps working
    await until(lambda: [r for r in user_rows(host) if r["content"]["text"] == "second"], "next")
