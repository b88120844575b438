"""``nanoclaw channels add``: the real CLI in a subprocess against fake platforms."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import sys
from pathlib import Path

import pytest

from nanoclaw.channels.pairing import WELCOME_PROMPT
from tests.conftest import REPO_ROOT
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import BOT_USERNAME, FakeTelegram

pytestmark = pytest.mark.timeout(90)
CODE = re.compile(r"Pairing code for \w+: ([A-Z0-9]{4}-[A-Z0-9]{4})")


def cli_env(tmp_path: Path, short_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NANOCLAW_", "SLACK_", "TELEGRAM_"))
    }
    env.update(
        NANOCLAW_ROOT=str(REPO_ROOT),
        NANOCLAW_ENV_FILE=str(tmp_path / ".env"),
        NANOCLAW_DATA_DIR=str(tmp_path / "data"),
        NANOCLAW_GROUPS_DIR=str(tmp_path / "groups"),
        NANOCLAW_LOGS_DIR=str(tmp_path / "logs"),
        NANOCLAW_CLI_SOCKET_PATH=str(short_dir / "cli.sock"),
        NANOCLAW_RUNTIME="process",
        NANOCLAW_ALLOW_PROCESS_RUNTIME="true",
        NANOCLAW_TIMEZONE="UTC",
        COLUMNS="200",
        **extra,
    )
    return env


async def run_cli(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "nanoclaw.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def read_code(proc: asyncio.subprocess.Process, output: list[str]) -> str:
    """Read the command's lines into ``output`` until the pairing code; the code."""
    assert proc.stdout is not None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line, "".join(output)
        output.append(line)
        found = CODE.search(line)
        if found:
            return found.group(1)


async def test_add_telegram_checks_stores_pairs_and_welcomes(
    tg: FakeTelegram, tmp_path: Path, short_dir: Path
) -> None:
    env = cli_env(
        tmp_path,
        short_dir,
        NANOCLAW_TELEGRAM_API_BASE_URL=tg.url,
        NANOCLAW_TELEGRAM_POLL_TIMEOUT_S="1",
        TELEGRAM_BOT_TOKEN=tg.token,
    )
    proc = await run_cli(env, "channels", "add", "telegram", "--timeout", "60")
    output: list[str] = []
    code = await read_code(proc, output)
    await tg.push({"message": tg.message(code, chat_id=7, user_id=7, first_name="Op")})
    rest, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = "".join(output) + rest.decode()
    assert proc.returncode == 0, text
    assert f"bot @{BOT_USERNAME}" in text
    assert tg.token not in text  # never printed in full
    assert "NANOCLAW_TELEGRAM_BOT_TOKEN=1234…oken" in text
    assert "Paired telegram:7 as owner" in text
    assert (tmp_path / ".env").read_text().splitlines() == [
        f"NANOCLAW_TELEGRAM_BOT_TOKEN={tg.token}"
    ]
    assert (tmp_path / ".env").stat().st_mode & 0o777 == 0o600
    (welcome,) = tg.called("sendMessage")
    assert int(welcome.params["chat_id"]) == 7 and WELCOME_PROMPT in welcome.params["text"]
    db = sqlite3.connect(tmp_path / "data" / "nanoclaw.db")
    roles = db.execute("SELECT user_id, role FROM user_roles ORDER BY user_id").fetchall()
    assert ("telegram:7", "owner") in roles
    # a second run finds the channel paired and does not ask again
    again = await run_cli(env, "channels", "add", "telegram")
    out, _ = await asyncio.wait_for(again.communicate(), 30)
    assert again.returncode == 0 and "paired already (telegram:7)" in out.decode()


async def test_add_telegram_with_a_bad_token_fails_and_stores_nothing(
    tg: FakeTelegram, tmp_path: Path, short_dir: Path
) -> None:
    env = cli_env(
        tmp_path,
        short_dir,
        NANOCLAW_TELEGRAM_API_BASE_URL=tg.url,
        TELEGRAM_BOT_TOKEN="999:wrong-token-value",
    )
    proc = await run_cli(env, "channels", "add", "telegram")
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    assert "Telegram rejected the token: Unauthorized" in out.decode()
    assert not (tmp_path / ".env").exists()


async def test_add_slack_checks_both_tokens(tmp_path: Path, short_dir: Path) -> None:
    fake = FakeSlack()
    await fake.start()
    try:
        env = cli_env(
            tmp_path,
            short_dir,
            NANOCLAW_SLACK_API_BASE_URL=fake.api_url,
            SLACK_BOT_TOKEN=fake.bot_token,
            SLACK_APP_TOKEN="xapp-wrong",
        )
        proc = await run_cli(env, "channels", "add", "slack", "--no-wait")
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        assert (
            proc.returncode == 1 and "Slack rejected the credentials: invalid_auth" in out.decode()
        )
        env["SLACK_APP_TOKEN"] = fake.app_token
        proc = await run_cli(env, "channels", "add", "slack", "--no-wait")
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        text = out.decode()
        assert proc.returncode == 0, text
        assert fake.bot_token not in text and fake.app_token not in text
        assert "Pairing code for" in text and "direct message to @andy" in text
        stored = (tmp_path / ".env").read_text()
        assert f"NANOCLAW_SLACK_BOT_TOKEN={fake.bot_token}" in stored
        assert "NANOCLAW_SLACK_MODE=socket" in stored
    finally:
        await fake.stop()
