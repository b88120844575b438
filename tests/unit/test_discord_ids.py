"""Discord chat ids from v1 JIDs and v2 (Chat SDK) platform ids, as the Discord adapter names them."""

from __future__ import annotations

from nanoclaw.importer.ids import ChatAddress, from_v1_jid, from_v2


def test_a_v1_discord_jid_is_the_channel_id() -> None:
    assert from_v1_jid("dc:1300000000000000001") == ChatAddress(
        "discord", "1300000000000000001", True
    )


def test_a_v2_discord_id_keeps_the_channel_of_a_guild_a_thread_or_a_dm() -> None:
    guild = from_v2("discord", "discord:1200:1300", True)
    thread = from_v2("discord", "discord:1200:1300:1301", True)
    dm = from_v2("discord", "discord:@me:1400", True)
    assert guild == ChatAddress("discord", "1300", True)
    assert thread == ChatAddress("discord", "1300", True)  # the thread's parent channel
    assert dm == ChatAddress("discord", "1400", False)
    assert from_v2("discord", "1300", True) == ChatAddress("discord", "1300", True)
