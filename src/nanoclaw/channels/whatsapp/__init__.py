"""WhatsApp channel spec (light: neonize is imported only when a linked session is enabled)."""

from __future__ import annotations

from pathlib import Path

from nanoclaw.channels.registry import ChannelSpec
from nanoclaw.settings import Settings

SESSION_DIR = "whatsapp"
SESSION_FILE = "session.sqlite3"
INSTALL_HINT = "pip install 'nanoclaw[whatsapp]'"


def session_path(settings: Settings) -> Path:
    """Where neonize keeps the linked device's keys (``data/whatsapp/session.sqlite3``)."""
    return settings.data_path / SESSION_DIR / SESSION_FILE


def missing_credentials(settings: Settings) -> list[str]:
    if not settings.whatsapp_enabled:
        return ["NANOCLAW_WHATSAPP_ENABLED"]
    if not session_path(settings).is_file():
        return ["a linked session via `nanoclaw channels add whatsapp`"]
    return []


SPEC = ChannelSpec(
    name="whatsapp",
    runtime="nanoclaw.channels.whatsapp.adapter:WhatsAppAdapter",
    enabled_by=missing_credentials,
)
