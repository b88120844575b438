"""``nanoclaw channels add discord``: the real CLI in a subprocess against the fake Discord."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nanoclaw.channels.pairing import WELCOME_PROMPT
from tests.channel_helpers import until
from tests.fakes.discord import USER_ID, FakeDiscord
from tests.integration.test_channels_add import cli_env, read_code, run_cli

pytestmark = pytest.mark.timeout(90)
DM_CHANNEL = str(int(USER_ID) + 1)


@pytest.fixture
async def dc() -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def discord_env(tmp_path: Path, short_dir: Path, dc: FakeDiscord, token: str) -> dict[str, str]:
    env = cli_env(
        tmp_path,
        short_dir,
        NANOCLAW_DISCORD_API_BASE_URL=dc.api_base_url,
        NANOCLAW_DISCORD_GUILD_READY_TIMEOUT_S="0.2",
    )
    env.pop("DISCORD_BOT_TOKEN", None)
    env["DISCORD_BOT_TOKEN"] = token
    return env


async def test_add_discord_checks_the_token_stores_it_pairs_and_says_hello(
    dc: FakeDiscord, tmp_path: Path, short_dir: Path
) -> None:
    env = discord_env(tmp_path, short_dir, dc, dc.token)
    proc = await run_cli(env, "channels", "add", "discord", "--timeout", "60")
    output: list[str] = []
    code = await read_code(proc, output)
    await dc.wait_for("GET /gateway/bot")  # the in-process host is connecting
    await until(dc.connected, "the host's gateway session")
    await dc.send_message(dc.message(code, channel_id=DM_CHANNEL, dm=True))
    rest, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = "".join(output) + rest.decode()
    assert proc.returncode == 0, text
    assert "Discord credentials accepted (bot @andy)" in text
    assert dc.token not in text  # never printed in full
    assert f"Paired discord:{USER_ID} as owner" in text
    assert (tmp_path / ".env").read_text().splitlines() == [
        f"NANOCLAW_DISCORD_BOT_TOKEN={dc.token}"
    ]
    (welcome,) = dc.sent(DM_CHANNEL)
    assert WELCOME_PROMPT in welcome.params["content"]
    checked = [c.method for c in dc.calls[:2]]
    assert checked == ["GET /users/@me", "GET /applications/@me"]


async def test_add_discord_refuses_a_bot_without_the_message_content_intent(
    dc: FakeDiscord, tmp_path: Path, short_dir: Path
) -> None:
    dc.message_content_intent = False
    proc = await run_cli(
        discord_env(tmp_path, short_dir, dc, dc.token), "channels", "add", "discord"
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    text = " ".join(out.decode().split())  # rich wraps long lines
    assert proc.returncode == 1, text
    assert "Message Content Intent" in text and "Privileged Gateway Intents" in text
    assert not (tmp_path / ".env").exists()


async def test_add_discord_with_a_bad_token_fails_and_stores_nothing(
    dc: FakeDiscord, tmp_path: Path, short_dir: Path
) -> None:
    proc = await run_cli(
        discord_env(tmp_path, short_dir, dc, "wrong"), "channels", "add", "discord"
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    assert "Discord rejected the token (401 Unauthorized)" in out.decode()
    assert not (tmp_path / ".env").exists()
