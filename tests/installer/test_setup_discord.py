"""Setup's channel step for Discord: the token checked (and its Message Content intent), stored,
the host restarted, and the pairing done in the same run."""

from __future__ import annotations

import re
import time

import pytest

from tests.conftest import REPO_ROOT
from tests.fakes.discord import USER_ID, FakeDiscord
from tests.installer.conftest import Install
from tests.installer.piped import read_until, spawn
from tests.installer.threaded import running

pytestmark = pytest.mark.timeout(400)
CODE = re.compile(r"Pairing code: ([A-Z0-9]{4}-[A-Z0-9]{4})")
DM_CHANNEL = str(int(USER_ID) + 1)
CONNECT_WITHIN_S = 120.0


def test_discord_is_paired_within_the_setup_run(install: Install) -> None:
    dc = FakeDiscord()
    with running(dc) as loop:
        install.env.update(
            NANOCLAW_DISCORD_API_BASE_URL=dc.api_base_url,
            NANOCLAW_DISCORD_GUILD_READY_TIMEOUT_S="0.2",
        )
        proc = spawn(
            [
                "bash",
                str(REPO_ROOT / "nanoclaw.sh"),
                "--mock",
                "--timezone",
                "UTC",
                "--channel",
                "discord",
                "--discord-token",
                dc.token,
                "--pair-timeout",
                "120",
            ],
            install,
        )
        assert proc.stdout is not None
        seen: list[str] = []
        code = read_until(proc, seen, CODE)
        deadline = time.monotonic() + CONNECT_WITHIN_S
        while not dc.connected():  # the restarted host's gateway session
            assert time.monotonic() < deadline, "the host never connected to the gateway"
            time.sleep(0.05)
        loop.call(dc.send_message(dc.message(code, channel_id=DM_CHANNEL, dm=True)))
        rest = proc.stdout.read()  # the same buffered pipe (communicate() would skip its buffer)
        proc.wait(timeout=180)
        text = "".join(seen) + rest
        assert proc.returncode == 0, text
        assert "andy" in text and f"paired discord:{USER_ID} as owner" in text
        assert dc.token not in text.replace(f"--discord-token {dc.token}", "")
        assert dc.sent(DM_CHANNEL)  # the welcome
    stored = install.env_file.read_text()
    assert f"NANOCLAW_DISCORD_BOT_TOKEN={dc.token}" in stored
