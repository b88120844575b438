"""v1 WhatsApp JIDs (v1-install.md §4) land on the ids the WhatsApp adapter uses."""

from __future__ import annotations

from pathlib import Path

from nanoclaw.channels.base import ChannelSetup, InboundEvent, RouteReceipt, user_id_of
from nanoclaw.channels.whatsapp.adapter import WhatsAppAdapter
from nanoclaw.importer.ids import ChatAddress, from_v1_jid, v1_sender_user_id
from tests.fakes.whatsapp import FakeWhatsApp


def test_v1_whatsapp_jids_map_to_chats_and_people() -> None:
    assert from_v1_jid("120363012345678901@g.us") == ChatAddress(
        "whatsapp", "120363012345678901@g.us", True
    )
    assert from_v1_jid("15550003333@s.whatsapp.net") == ChatAddress(
        "whatsapp", "15550003333@s.whatsapp.net", False
    )
    assert from_v1_jid("88001122334455@lid") == ChatAddress("whatsapp", "88001122334455@lid", False)
    assert v1_sender_user_id("whatsapp", "15550003333:12@s.whatsapp.net") == (
        "whatsapp:15550003333@s.whatsapp.net"
    )


async def test_an_imported_chat_and_sender_are_the_ones_the_adapter_reports(
    tmp_path: Path,
) -> None:
    seen: list[InboundEvent] = []

    async def inbox(event: InboundEvent) -> RouteReceipt | None:
        seen.append(event)
        return None

    wa = FakeWhatsApp()
    adapter = WhatsAppAdapter(session=tmp_path / "s.sqlite3", client_factory=wa.factory)
    await adapter.setup(ChannelSetup(on_inbound=inbox))
    await wa.emit_fixture("group_mention")
    (event,) = seen
    group = from_v1_jid("120363012345678901@g.us")
    assert (event.channel_type, event.platform_id) == (group.channel, group.platform_id)
    assert user_id_of("whatsapp", event.message.sender) == v1_sender_user_id(
        "whatsapp", "15550003333@s.whatsapp.net"
    )
