"""Setup's channel step: Telegram checked, stored, the host restarted, and the pairing done in-run."""

from __future__ import annotations

import json
import re
import sys

import pytest

from tests.conftest import REPO_ROOT
from tests.fakes.telegram import BOT_USERNAME, FakeTelegram
from tests.installer.conftest import Install
from tests.installer.piped import read_until, spawn
from tests.installer.threaded import running

pytestmark = pytest.mark.timeout(400)
CODE = re.compile(r"Pairing code: ([A-Z0-9]{4}-[A-Z0-9]{4})")
ADD_CODE = re.compile(r"Pairing code for \w+: ([A-Z0-9]{4}-[A-Z0-9]{4})")
WAITING = re.compile(r"Waiting for the code")


def test_telegram_is_paired_within_the_setup_run(install: Install) -> None:
    tg = FakeTelegram()
    with running(tg) as loop:
        install.env.update(
            NANOCLAW_TELEGRAM_API_BASE_URL=tg.url, NANOCLAW_TELEGRAM_POLL_TIMEOUT_S="1"
        )
        proc = spawn(
            [
                "bash",
                str(REPO_ROOT / "nanoclaw.sh"),
                "--mock",
                "--timezone",
                "UTC",
                "--channel",
                "telegram",
                "--telegram-token",
                tg.token,
                "--pair-timeout",
                "120",
            ],
            install,
        )
        assert proc.stdout is not None
        seen: list[str] = []
        code = read_until(proc, seen, CODE)
        loop.call(tg.push({"message": tg.message(code, chat_id=7, user_id=7, first_name="Op")}))
        # read on through the same buffered pipe (communicate() would skip what it holds)
        rest = proc.stdout.read()
        proc.wait(timeout=180)
        text = "".join(seen) + rest
        assert proc.returncode == 0, text
        assert f"bot @{BOT_USERNAME}" in text and f"t.me/{BOT_USERNAME}" in text
        assert "paired telegram:7 as owner; the welcome was sent" in text
        assert tg.token not in text.replace(f"--telegram-token {tg.token}", "")
        assert any(int(c.params["chat_id"]) == 7 for c in tg.called("sendMessage"))
    stored = install.env_file.read_text()
    assert f"NANOCLAW_TELEGRAM_BOT_TOKEN={tg.token}" in stored


def test_channels_add_restarts_a_running_host_to_pair(install: Install) -> None:
    """The stored token is used at once: the running host is restarted, then the code arrives."""
    tg = FakeTelegram()
    with running(tg) as loop:
        install.env.update(
            NANOCLAW_TELEGRAM_API_BASE_URL=tg.url, NANOCLAW_TELEGRAM_POLL_TIMEOUT_S="1"
        )
        assert install.nanoclaw("init").returncode == 0
        assert install.nanoclaw("start").returncode == 0
        before = json.loads(install.nanoclaw("status", "--json").stdout)["running_host"]["pid"]
        proc = spawn(
            [
                sys.executable,
                "-m",
                "nanoclaw.cli",
                "channels",
                "add",
                "telegram",
                "--token",
                tg.token,
                "--timeout",
                "120",
            ],
            install,
        )
        assert proc.stdout is not None
        seen: list[str] = []
        code = read_until(proc, seen, ADD_CODE)
        read_until(proc, seen, WAITING)
        assert "Restarting the host" in "".join(seen)
        loop.call(tg.push({"message": tg.message(code, chat_id=9, user_id=9, first_name="Op")}))
        # read on through the same buffered pipe (communicate() would skip what it holds)
        rest = proc.stdout.read()
        proc.wait(timeout=180)
        assert proc.returncode == 0, "".join(seen) + rest
        assert "Paired telegram:9 as owner" in rest
    status = json.loads(install.nanoclaw("status", "--json").stdout)["running_host"]
    assert status["pid"] != before and status["settings_current"] is True
