"""Slack channel spec (light: slack-bolt is imported only when credentials exist)."""

from __future__ import annotations

from nanoclaw.channels.registry import ChannelSpec
from nanoclaw.settings import Settings


def missing_credentials(settings: Settings) -> list[str]:
    missing = []
    if settings.slack_bot_token is None:
        missing.append("NANOCLAW_SLACK_BOT_TOKEN")
    elif settings.slack_mode == "socket" and settings.slack_app_token is None:
        missing.append("NANOCLAW_SLACK_APP_TOKEN")
    elif settings.slack_mode == "http" and settings.slack_signing_secret is None:
        missing.append("NANOCLAW_SLACK_SIGNING_SECRET")
    return missing


SPEC = ChannelSpec(
    name="slack",
    runtime="nanoclaw.channels.slack.adapter:SlackAdapter",
    enabled_by=missing_credentials,
    threaded=True,
)
