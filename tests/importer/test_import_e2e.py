"""After an import, a message in an imported Telegram group reaches the imported agent and is answered."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import SecretStr

from nanoclaw.host import Host, build_host
from nanoclaw.settings import Settings
from tests.fakes.telegram import FakeTelegram
from tests.importer.conftest import nc
from tests.importer.trees import OWNER_JID, make_v1

pytestmark = pytest.mark.timeout(60)
BOOK_CLUB = -1001234


async def test_a_message_in_an_imported_group_is_answered_by_its_agent(
    tmp_path: Path, settings: Settings, tg: FakeTelegram
) -> None:
    tree = make_v1(tmp_path / "v1")
    code, out = await asyncio.to_thread(
        nc, "import", str(tree.root), "--yes", "--owner", f"whatsapp:{OWNER_JID}"
    )
    assert code == 0, out
    host: Host = build_host(
        settings.model_copy(
            update={
                "telegram_bot_token": SecretStr(tg.token),
                "telegram_api_base_url": tg.url,
                "telegram_poll_timeout_s": 1,
            }
        )
    )
    await host.start()
    try:
        # v1's trigger: "@Andy" at the start; other text in the group does not wake the agent.
        await tg.push(
            {
                "message": tg.message(
                    "just chatting", chat_id=BOOK_CLUB, chat_type="supergroup", user_id=777
                )
            }
        )
        await tg.push(
            {
                "message": tg.message(
                    "@Andy what do we read?", chat_id=BOOK_CLUB, chat_type="supergroup", user_id=777
                )
            }
        )
        (reply,) = await tg.wait_for("sendMessage")
        assert int(reply.params["chat_id"]) == BOOK_CLUB
        assert "@Andy what do we read?" in reply.params["text"]
        assert "just chatting" not in reply.params["text"]
    finally:
        await host.stop()
