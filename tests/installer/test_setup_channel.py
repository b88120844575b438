"""Setup's channel step: Telegram checked, stored, the host restarted, and the pairing done in-run."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT
from tests.fakes.telegram import BOT_USERNAME, FakeTelegram
from tests.installer.conftest import Install
from tests.installer.threaded import running

pytestmark = pytest.mark.timeout(400)
CODE = re.compile(r"Pairing code: ([A-Z0-9]{4}-[A-Z0-9]{4})")


def test_telegram_is_paired_within_the_setup_run(install: Install) -> None:
    tg = FakeTelegram()
    with running(tg) as loop:
        install.env.update(
            NANOCLAW_TELEGRAM_API_BASE_URL=tg.url, NANOCLAW_TELEGRAM_POLL_TIMEOUT_S="1"
        )
        proc = subprocess.Popen(
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
            cwd=REPO_ROOT,
            env=install.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        seen: list[str] = []
        code = None
        while code is None:
            line = proc.stdout.readline()
            assert line, "".join(seen)
            sys.stdout.write(line)
            seen.append(line)
            found = CODE.search(line)
            code = found.group(1) if found else None
        loop.call(tg.push({"message": tg.message(code, chat_id=7, user_id=7, first_name="Op")}))
        rest, _ = proc.communicate(timeout=180)
        text = "".join(seen) + rest
        assert proc.returncode == 0, text
        assert f"bot @{BOT_USERNAME}" in text and f"t.me/{BOT_USERNAME}" in text
        assert "paired telegram:7 as owner; the welcome was sent" in text
        assert tg.token not in text.replace(f"--telegram-token {tg.token}", "")
        assert any(int(c.params["chat_id"]) == 7 for c in tg.called("sendMessage"))
    stored = install.env_file.read_text()
    assert f"NANOCLAW_TELEGRAM_BOT_TOKEN={tg.token}" in stored
