"""Discord channel spec (light: discord.py is imported only when a bot token is set)."""

from __future__ import annotations

from nanoclaw.channels.registry import ChannelSpec
from nanoclaw.settings import Settings


def missing_credentials(settings: Settings) -> list[str]:
    return [] if settings.discord_bot_token is not None else ["NANOCLAW_DISCORD_BOT_TOKEN"]


SPEC = ChannelSpec(
    name="discord",
    runtime="nanoclaw.channels.discord.adapter:DiscordAdapter",
    enabled_by=missing_credentials,
    threaded=True,  # a thread is a thread
)
