"""The channel registry: skip without credentials, lazy imports, retry with backoff, status."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys

import pytest
from pydantic import SecretStr

from nanoclaw.channels.registry import STATE_FILE, read_states
from nanoclaw.cli.status import gather
from nanoclaw.host import build_host
from nanoclaw.settings import Settings
from tests.fakes.telegram import FakeTelegram
from tests.helpers import make_agent, say, texts, wire_chat

pytestmark = pytest.mark.timeout(60)


async def test_channels_without_credentials_are_skipped_with_a_log_line(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="nanoclaw.channels")
    host = build_host(settings)
    assert [a.name for a in host.channels.all()] == ["cli"]
    messages = [r.getMessage() for r in caplog.records]
    assert "channel slack skipped: no credentials (set NANOCLAW_SLACK_BOT_TOKEN)" in messages
    assert "channel telegram skipped: no credentials (set NANOCLAW_TELEGRAM_BOT_TOKEN)" in messages
    states = {s.name: s.state for s in host.channels.states()}
    assert states == {
        "slack": "skipped",
        "telegram": "skipped",
        "discord": "skipped",
        "whatsapp": "skipped",
    }


def test_platform_libraries_are_imported_only_for_configured_channels(tmp_path: object) -> None:
    code = (
        "import sys\n"
        "from nanoclaw.settings import Settings\n"
        "from nanoclaw.channels.registry import build_adapters\n"
        "from nanoclaw.executors import BlockingExecutor\n"
        "build_adapters(Settings(_env_file=None), blocking=BlockingExecutor())\n"
        "print('slack_bolt' in sys.modules, 'nanoclaw.channels.telegram.adapter' in sys.modules)\n"
        "print('discord' in sys.modules)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    assert out.stdout.split() == ["False", "False", "False"]


async def test_a_failing_channel_is_retried_with_backoff_and_never_stops_the_host(
    settings: Settings, tg: FakeTelegram
) -> None:
    tg.fail_get_me = 2
    s = settings.model_copy(
        update={
            "telegram_bot_token": SecretStr(tg.token),
            "telegram_api_base_url": tg.url,
            "telegram_poll_timeout_s": 1,
            "channel_retry_delays_s": (0.2, 0.5),
        }
    )
    host = build_host(s)
    await host.start()  # returns at once: Telegram connects in the background
    try:
        andy = make_agent(host.repo, "Andy")
        wire_chat(host.repo, andy, "local")
        exchange = await say(s.cli_socket, "still here?")  # the host works meanwhile
        assert texts(exchange) == ["Andy (mock model, no API key configured) heard: still here?"]
        adapter = host.channels.get("telegram")
        assert adapter is not None
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(300):
            if adapter.is_connected():
                break
            await asyncio.sleep(0.02)
        assert adapter.is_connected()
        assert len(tg.called("getMe")) == 3
        state = read_states(s.data_path / STATE_FILE)
        assert state is not None
        assert state["channels"]["telegram"]["state"] == "connected"
        assert state["channels"]["telegram"]["attempts"] == 3
        assert loop.time() - started < 5
    finally:
        await host.stop()


async def test_status_shows_each_channel_state(settings: Settings, tg: FakeTelegram) -> None:
    tg.fail_get_me = 10_000
    s = settings.model_copy(
        update={
            "telegram_bot_token": SecretStr(tg.token),
            "telegram_api_base_url": tg.url,
            "channel_retry_delays_s": (0.05,),
        }
    )
    host = build_host(s)
    await host.start()
    try:
        for _ in range(200):
            if len(tg.called("getMe")) >= 3:
                break
            await asyncio.sleep(0.02)
        data = await asyncio.to_thread(gather, s)
        rows = {r["channel"]: r for r in data["channels"]}
        assert rows["cli"]["state"] == "connected"
        assert rows["telegram"]["state"] == "retrying"
        assert "502" in rows["telegram"]["detail"] or "Bad Gateway" in rows["telegram"]["detail"]
        assert rows["slack"]["state"] == "skipped"  # no credentials
        assert "NANOCLAW_SLACK_BOT_TOKEN" in rows["slack"]["detail"]
    finally:
        await host.stop()
    assert (await asyncio.to_thread(gather, s))["channels"][0]["state"] == "stopped"
