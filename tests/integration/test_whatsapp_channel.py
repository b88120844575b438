"""WhatsApp: neonize events from fixtures → the adapter (and a real host) → a recording client.

The WhatsApp network is not reachable from the tests: inbound is tested at neonize's event
seam with its own proto types, outbound through the recording fake of neonize's client.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from neonize.proto import Neonize_pb2 as npb
from neonize.utils.enum import ChatPresence

from nanoclaw.channels.base import (
    ChannelSetup,
    InboundEvent,
    OutboundFile,
    OutboundPayload,
    RouteReceipt,
)
from nanoclaw.channels.whatsapp import session_path
from nanoclaw.channels.whatsapp.adapter import NotLinkedError, WhatsAppAdapter
from nanoclaw.errors import DeliveryError
from nanoclaw.host import Host
from nanoclaw.settings import Settings
from tests.channel_helpers import until, wired_host
from tests.fakes.whatsapp import FakeWhatsApp, parse
from tests.helpers import shared_executors

pytestmark = pytest.mark.timeout(60)

MOCK = "(mock model, no API key configured) heard: "
GROUP = "120363012345678901@g.us"
FRIEND = "15550003333@s.whatsapp.net"
OWNER = "15550002222@s.whatsapp.net"
ME = "15550001111@s.whatsapp.net"


class Inbox:
    def __init__(self) -> None:
        self.events: list[InboundEvent] = []

    async def __call__(self, event: InboundEvent) -> RouteReceipt | None:
        self.events.append(event)
        return None


@pytest.fixture
def wa() -> FakeWhatsApp:
    return FakeWhatsApp()


async def started(
    wa: FakeWhatsApp, tmp_path: Path, *, own_number: bool = True
) -> tuple[WhatsAppAdapter, Inbox]:
    adapter = WhatsAppAdapter(
        session=tmp_path / "session.sqlite3",
        client_factory=wa.factory,
        own_number=own_number,
        assistant_name="Andy",
    )
    inbox = Inbox()
    await adapter.setup(ChannelSetup(on_inbound=inbox))
    return adapter, inbox


# -- inbound at the event seam ---------------------------------------------------------------------
async def test_connects_with_the_linked_devices_own_jids(wa: FakeWhatsApp, tmp_path: Path) -> None:
    adapter, _ = await started(wa, tmp_path)
    assert adapter.is_connected()
    assert adapter.own_jids == {ME, "88001122334455@lid"}  # device part dropped
    assert wa.sessions == [tmp_path / "session.sqlite3"]


async def test_an_unlinked_session_fails_setup_and_says_how_to_link(tmp_path: Path) -> None:
    wa = FakeWhatsApp(linked=False)
    adapter = WhatsAppAdapter(session=tmp_path / "s.sqlite3", client_factory=wa.factory)
    with pytest.raises(NotLinkedError, match="nanoclaw channels add whatsapp"):
        await adapter.setup(ChannelSetup(on_inbound=Inbox()))
    assert not adapter.is_connected()
    assert [c.method for c in wa.calls] == ["connect", "disconnect"]


async def test_group_messages_engage_on_a_mention_or_a_quote_of_the_assistant(
    wa: FakeWhatsApp, tmp_path: Path
) -> None:
    _, inbox = await started(wa, tmp_path)
    await wa.emit_fixture("group_plain")
    await wa.emit_fixture("group_mention")
    await wa.emit_fixture("group_reply_to_assistant")
    plain, mention, quote = inbox.events
    assert all(e.platform_id == GROUP and e.message.is_group for e in inbox.events)
    assert (plain.message.is_mention, mention.message.is_mention, quote.message.is_mention) == (
        False,
        True,
        True,
    )
    assert mention.message.text == "@Andy what is on today?"  # the JID mention, readable
    assert mention.message.sender == FRIEND and mention.message.sender_name == "Sam"


async def test_a_direct_chat_always_engages(wa: FakeWhatsApp, tmp_path: Path) -> None:
    _, inbox = await started(wa, tmp_path)
    await wa.emit_fixture("direct_text")
    (event,) = inbox.events
    assert (event.platform_id, event.message.is_group, event.message.is_mention) == (
        FRIEND,
        False,
        True,
    )
    assert event.message.id == "3EB0A1B2C3D4E5F60004" and event.message.text == "hello there"


async def test_a_quoted_message_is_the_reply_context(wa: FakeWhatsApp, tmp_path: Path) -> None:
    _, inbox = await started(wa, tmp_path)
    await wa.emit_fixture("direct_reply")
    reply_to = inbox.events[0].message.reply_to
    assert reply_to is not None
    assert reply_to.to_dict() == {
        "id": "3EB0A1B2C3D4E5F60004",
        "text": "the blue or the red one?",
        "sender": FRIEND,
    }


async def test_image_document_and_voice_arrive_as_downloaded_attachments(
    wa: FakeWhatsApp, tmp_path: Path
) -> None:
    wa.media["/v/t62.7118-24/photo.enc"] = b"\xff\xd8jpeg"
    wa.media["/v/t62.7119-24/report.enc"] = b"%PDF-1.7"
    wa.media["/v/t62.7117-24/voice.enc"] = b"OggS"
    _, inbox = await started(wa, tmp_path)
    for name in ("direct_image", "direct_document", "direct_voice"):
        await wa.emit_fixture(name)
    image, document, voice = (e.message for e in inbox.events)
    assert image.text == "what is this plant?"
    assert [(a.name, a.mime, a.data) for a in image.attachments] == [
        ("image-3EB0A1B2C3D4E5F60006.jpg", "image/jpeg", b"\xff\xd8jpeg")
    ]
    assert [(a.name, a.data) for a in document.attachments] == [("report.pdf", b"%PDF-1.7")]
    assert [(a.name, a.data) for a in voice.attachments] == [
        ("audio-3EB0A1B2C3D4E5F60008.ogg", b"OggS")
    ]
    kinds = [c.args["kind"] for c in wa.called("download_any")]
    assert kinds == ["imageMessage", "documentMessage", "audioMessage"]


async def test_a_failed_download_keeps_the_message_with_the_files_name(
    wa: FakeWhatsApp, tmp_path: Path
) -> None:
    _, inbox = await started(wa, tmp_path)  # the fake knows no media: the download fails
    await wa.emit_fixture("direct_document")
    (event,) = inbox.events
    assert [(a.name, a.data) for a in event.message.attachments] == [("report.pdf", None)]


async def test_a_redelivered_message_arrives_once(wa: FakeWhatsApp, tmp_path: Path) -> None:
    _, inbox = await started(wa, tmp_path)
    await wa.emit_fixture("direct_text")
    await wa.emit_fixture("direct_text")  # the same id again (WhatsApp retries, reconnects)
    await wa.emit_fixture("direct_reply")
    assert [e.message.id for e in inbox.events] == ["3EB0A1B2C3D4E5F60004", "3EB0A1B2C3D4E5F60005"]


async def test_a_reaction_never_wakes_an_agent(wa: FakeWhatsApp, tmp_path: Path) -> None:
    _, inbox = await started(wa, tmp_path)
    await wa.emit_fixture("direct_reaction")
    await wa.emit_fixture("direct_text")
    assert [e.message.id for e in inbox.events] == ["3EB0A1B2C3D4E5F60004"]


async def test_own_number_drops_every_message_from_this_account(
    wa: FakeWhatsApp, tmp_path: Path
) -> None:
    _, inbox = await started(wa, tmp_path, own_number=True)
    await wa.emit_fixture("own_from_me")
    await wa.emit_fixture("shared_owner_note")
    await wa.emit_fixture("direct_text")
    assert [e.message.id for e in inbox.events] == ["3EB0A1B2C3D4E5F60004"]


async def test_shared_number_takes_the_owners_messages_and_drops_marked_replies(
    wa: FakeWhatsApp, tmp_path: Path
) -> None:
    adapter, inbox = await started(wa, tmp_path, own_number=False)
    await wa.emit_fixture("shared_owner_note")
    await wa.emit_fixture("shared_marked_reply")
    (note,) = inbox.events
    assert (note.platform_id, note.message.sender, note.message.text) == (
        OWNER,
        OWNER,
        "remind me to call mum",
    )
    # The assistant's answer carries the marker, and its echo (same id) is dropped too.
    sent_id = await adapter.deliver(
        OWNER, None, OutboundPayload(kind="chat", content={"text": "noted"}, sender_name="Andy")
    )
    (send,) = wa.sent()
    assert send.args["message"].conversation == "Andy: noted"
    echo = parse("shared_owner_note")
    echo.Info.ID = sent_id or ""
    echo.Message.conversation = "noted (edited on the phone, marker removed)"
    await wa.emit(echo)
    await wa.emit_fixture("direct_text")  # a state to wait for: the next message arrived
    assert [e.message.id for e in inbox.events] == [
        "3EB0A1B2C3D4E5F6000B",
        "3EB0A1B2C3D4E5F60004",
    ]  # an id this adapter sent never comes back, marker or not


async def test_a_malformed_event_is_logged_and_the_next_message_still_arrives(
    wa: FakeWhatsApp, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, inbox = await started(wa, tmp_path)
    with caplog.at_level(logging.ERROR, logger="nanoclaw.channels.whatsapp"):
        await wa.emit_fixture("malformed_no_chat")
    assert "3EB0A1B2C3D4E5F6000D could not be handled" in caplog.text
    await wa.emit_fixture("direct_text")
    assert [e.message.id for e in inbox.events] == ["3EB0A1B2C3D4E5F60004"]


async def test_logged_out_shows_as_disconnected_with_the_fix(
    wa: FakeWhatsApp, tmp_path: Path
) -> None:
    adapter, _ = await started(wa, tmp_path)
    await wa.emit_fixture("logged_out", npb.LoggedOut)
    health = adapter.health()
    assert not adapter.is_connected()
    assert "nanoclaw channels add whatsapp" in health.detail


# -- outbound through the recording client ---------------------------------------------------------
async def test_the_answer_to_a_group_mention_quotes_it(wa: FakeWhatsApp, tmp_path: Path) -> None:
    adapter, _ = await started(wa, tmp_path)
    await wa.emit_fixture("group_mention")
    await adapter.deliver(GROUP, None, OutboundPayload(kind="chat", content={"text": "a dentist"}))
    await adapter.deliver(GROUP, None, OutboundPayload(kind="chat", content={"text": "and more"}))
    first, second = wa.sent()
    assert first.args["to"] == GROUP
    quoted = first.args["message"].extendedTextMessage
    assert quoted.text == "a dentist"
    assert quoted.contextInfo.stanzaID == "3EB0A1B2C3D4E5F60001"
    assert quoted.contextInfo.participant == FRIEND
    assert second.args["message"].conversation == "and more"  # only the answer quotes


async def test_files_go_as_image_or_document(wa: FakeWhatsApp, tmp_path: Path) -> None:
    adapter, _ = await started(wa, tmp_path)
    payload = OutboundPayload(
        kind="chat",
        content={"text": "here you go"},
        files=(OutboundFile("chart.png", b"\x89PNG"), OutboundFile("notes.txt", b"hi")),
    )
    first_id = await adapter.deliver(FRIEND, None, payload)
    text, image, document = wa.sent()
    assert text.args["message"].conversation == "here you go"
    assert first_id == "3EB0FA4E000000000001"  # the first send's id (the fake's first response)
    assert (image.method, image.args["to"], image.args["file"]) == (
        "send_image",
        FRIEND,
        b"\x89PNG",
    )
    assert (document.method, document.args["filename"], document.args["mimetype"]) == (
        "send_document",
        "notes.txt",
        "text/plain",
    )


async def test_a_reaction_goes_to_the_remembered_message_and_its_sender(
    wa: FakeWhatsApp, tmp_path: Path
) -> None:
    adapter, _ = await started(wa, tmp_path)
    await wa.emit_fixture("group_mention")
    reaction = OutboundPayload(
        kind="chat",
        content={"operation": "reaction", "messageId": "3EB0A1B2C3D4E5F60001", "emoji": "👍"},
    )
    assert await adapter.deliver(GROUP, None, reaction) == "3EB0A1B2C3D4E5F60001"
    (built,) = wa.called("build_reaction")
    assert built.args == {"chat": GROUP, "sender": FRIEND, "id": "3EB0A1B2C3D4E5F60001"}
    (send,) = wa.sent()
    assert send.args["message"].reactionMessage.text == "👍"
    unknown = OutboundPayload(
        kind="chat", content={"operation": "reaction", "messageId": "nope", "emoji": "👍"}
    )
    with pytest.raises(DeliveryError, match="not known"):
        await adapter.deliver(GROUP, None, unknown)


async def test_typing_is_the_composing_chat_presence(wa: FakeWhatsApp, tmp_path: Path) -> None:
    adapter, _ = await started(wa, tmp_path)
    await adapter.set_typing(FRIEND, None, True)
    await adapter.set_typing(FRIEND, None, False)
    states = [(c.args["to"], c.args["state"]) for c in wa.called("send_chat_presence")]
    assert states == [
        (FRIEND, ChatPresence.CHAT_PRESENCE_COMPOSING),
        (FRIEND, ChatPresence.CHAT_PRESENCE_PAUSED),
    ]


# -- through a real host ---------------------------------------------------------------------------
def wa_settings(settings: Settings) -> Settings:
    enabled = settings.model_copy(update={"whatsapp_enabled": True})
    path = session_path(enabled)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")  # what linking leaves behind (neonize's SQLite file)
    return enabled


async def connected(host: Host) -> WhatsAppAdapter:
    adapter = host.channels.get("whatsapp")
    assert isinstance(adapter, WhatsAppAdapter)
    await until(adapter.is_connected, "whatsapp connected")
    return adapter


@pytest.fixture
async def host(
    settings: Settings, wa: FakeWhatsApp, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Host]:
    monkeypatch.setattr("nanoclaw.channels.whatsapp.adapter.new_client", wa.factory)
    async with wired_host(
        wa_settings(settings),
        channel="whatsapp",
        connected=connected,
        direct=[FRIEND],
        groups=[GROUP],
    ) as instance:
        yield instance


async def test_a_group_mention_is_answered_in_the_group_quoting_it(
    host: Host, wa: FakeWhatsApp
) -> None:
    await wa.emit_fixture("group_plain")
    await wa.emit_fixture("group_mention")
    (send,) = await wa.wait_for("send_message", where=lambda c: c.args["to"] == GROUP)
    said = send.args["message"].extendedTextMessage
    assert said.text == f"Andy {MOCK}@Andy what is on today?"
    assert said.contextInfo.stanzaID == "3EB0A1B2C3D4E5F60001"
    assert all("just chatting" not in str(c.args["message"]) for c in wa.sent())


async def test_a_direct_message_is_answered_with_composing_first(
    host: Host, wa: FakeWhatsApp
) -> None:
    await wa.emit_fixture("direct_text")
    (send,) = await wa.wait_for("send_message", where=lambda c: c.args["to"] == FRIEND)
    assert send.args["message"].conversation == f"Andy {MOCK}hello there"
    composing = [
        c
        for c in wa.called("send_chat_presence")
        if c.args["state"] == ChatPresence.CHAT_PRESENCE_COMPOSING
    ]
    assert composing and wa.calls.index(composing[0]) < wa.calls.index(send)


async def test_the_registry_reports_whatsapp_skipped_until_linked(settings: Settings) -> None:
    from nanoclaw.channels.registry import build_adapters
    from nanoclaw.channels.whatsapp import SPEC

    _, states = build_adapters(settings, [SPEC], blocking=shared_executors().blocking)
    assert [(s.name, s.state) for s in states] == [("whatsapp", "skipped")]
    assert "NANOCLAW_WHATSAPP_ENABLED" in states[0].detail
    enabled = settings.model_copy(update={"whatsapp_enabled": True})
    _, states = build_adapters(enabled, [SPEC], blocking=shared_executors().blocking)
    assert "a linked session via `nanoclaw channels add whatsapp`" in states[0].detail
    adapters, states = build_adapters(
        wa_settings(settings), [SPEC], blocking=shared_executors().blocking
    )
    assert [a.name for a in adapters] == ["whatsapp"] and states == []


async def test_status_and_doctor_show_the_link_and_a_logout_with_its_fix(
    host: Host, wa: FakeWhatsApp
) -> None:
    from nanoclaw.cli.doctor import channel_checks
    from nanoclaw.cli.status import channel_states

    def row() -> dict[str, Any]:
        return next(r for r in channel_states(host.settings) if r["channel"] == "whatsapp")

    await until(lambda: row()["state"] == "connected", "whatsapp connected in status")
    (check,) = [c for c in channel_checks(host.settings) if c.name == "channel whatsapp"]
    assert check.ok
    await wa.emit_fixture("logged_out", npb.LoggedOut)
    await until(lambda: row()["state"] == "disconnected", "the logout in status")
    assert "nanoclaw channels add whatsapp" in row()["detail"]
    (check,) = [c for c in channel_checks(host.settings) if c.name == "channel whatsapp"]
    assert not check.ok and "logged out" in check.detail


def test_doctor_without_a_host_reads_what_linking_left(settings: Settings) -> None:
    from nanoclaw.channels.whatsapp.diagnose import offline_check
    from nanoclaw.channels.whatsapp.link import account_path

    assert offline_check(settings) is None  # not enabled: no row
    enabled = settings.model_copy(update={"whatsapp_enabled": True})
    assert offline_check(enabled) == (False, "not linked: run `nanoclaw channels add whatsapp`")
    linked = wa_settings(settings)
    account_path(linked).write_text('{"jid": "15550001111@s.whatsapp.net"}')
    ok, detail = offline_check(linked) or (False, "")
    assert ok and detail.startswith("linked as 15550001111@s.whatsapp.net (its own number)")


def run_python(code: str, tmp_path: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        check=True,
        timeout=60,
    )
    return out.stdout.strip()


def test_neonize_is_imported_only_for_an_enabled_channel(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from nanoclaw.settings import Settings\n"
        "from nanoclaw.channels.registry import build_adapters\n"
        "from nanoclaw.executors import BlockingExecutor\n"
        "build_adapters(Settings(_env_file=None), blocking=BlockingExecutor())\n"
        "print('neonize' in sys.modules)\n"
    )
    assert run_python(code, tmp_path) == "False"


def test_without_the_extra_the_channel_fails_and_names_the_install(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "sys.modules['neonize'] = None  # as if the whatsapp extra were not installed\n"
        "from pathlib import Path\n"
        "from nanoclaw.settings import Settings\n"
        "from nanoclaw.channels.registry import build_adapters\n"
        "from nanoclaw.executors import BlockingExecutor\n"
        "from nanoclaw.channels.whatsapp import session_path\n"
        f"s = Settings(_env_file=None, data_dir=Path({str(tmp_path)!r}), whatsapp_enabled=True)\n"
        "session_path(s).parent.mkdir(parents=True); session_path(s).touch()\n"
        "adapters, states = build_adapters(s, blocking=BlockingExecutor())\n"
        "print([(x.name, x.state, x.detail) for x in states if x.name == 'whatsapp'])\n"
    )
    out = run_python(code, tmp_path)
    assert "'whatsapp', 'failed'" in out and "pip install 'nanoclaw[whatsapp]'" in out


def test_neonizes_real_client_has_every_call_the_adapter_makes(tmp_path: Path) -> None:
    """The protocol (and so the fake) uses neonize's own names and parameters (no connection)."""
    import inspect

    from nanoclaw.channels.whatsapp.client import WhatsAppClient, new_client

    real = new_client(tmp_path / "wa" / "session.sqlite3")
    assert callable(real.event) and callable(real.event.qr)
    calls = [
        (name, member)
        for name, member in inspect.getmembers(WhatsAppClient, inspect.isfunction)
        if not name.startswith("_")
    ]
    assert {"send_message", "build_reply_message", "download_any", "PairPhone"} <= dict(
        calls
    ).keys()
    for name, member in calls:
        wanted = [p for p in inspect.signature(member).parameters if p != "self"]
        have = inspect.signature(getattr(real, name)).parameters
        assert all(p in have for p in wanted), (name, wanted, list(have))
        assert inspect.iscoroutinefunction(getattr(real, name)), name
