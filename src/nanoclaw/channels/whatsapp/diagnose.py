"""What ``doctor`` can say about WhatsApp without a running host (never opens the session)."""

from __future__ import annotations

import importlib.util

from nanoclaw.channels.whatsapp import INSTALL_HINT, session_path
from nanoclaw.settings import Settings


def offline_check(settings: Settings) -> tuple[bool, str] | None:
    """(ok, detail) for an enabled WhatsApp channel; None when it is not enabled.

    Linking cannot be tried from here: a second connection with the same session would
    take the link from a running host, so this reads the files linking left behind.
    """
    from nanoclaw.channels.whatsapp.link import linked_account

    if not settings.whatsapp_enabled:
        return None
    if importlib.util.find_spec("neonize") is None:
        return False, f"neonize is not installed: {INSTALL_HINT}"
    if not session_path(settings).is_file():
        return False, "not linked: run `nanoclaw channels add whatsapp`"
    account = linked_account(settings) or "an unknown account"
    mode = "its own number" if settings.whatsapp_own_number else "a number shared with the owner"
    return True, f"linked as {account} ({mode}); the link is live only while the host runs"
