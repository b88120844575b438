"""Telegram channel spec (light: the adapter is imported only when a bot token is set)."""

from __future__ import annotations

from nanoclaw.channels.registry import ChannelSpec
from nanoclaw.settings import Settings


def missing_credentials(settings: Settings) -> list[str]:
    return [] if settings.telegram_bot_token is not None else ["NANOCLAW_TELEGRAM_BOT_TOKEN"]


SPEC = ChannelSpec(
    name="telegram",
    runtime="nanoclaw.channels.telegram.adapter:TelegramAdapter",
    enabled_by=missing_credentials,
    threaded=True,  # forum topics
)
