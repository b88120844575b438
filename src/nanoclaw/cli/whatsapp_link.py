"""``nanoclaw channels add whatsapp``: link by QR code or pairing code, then pair like the others.

Linking makes this machine a linked device of the phone's account (the keys stay in
``data/whatsapp/``); the values stored in ``.env`` switch the channel on and say whether the
assistant has its own number.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from rich.console import Console

from nanoclaw.settings import Settings

console = Console()


def whatsapp_link(
    settings: Settings, *, phone: str | None, shared: bool, relink: bool
) -> tuple[dict[str, str], Coroutine[Any, Any, str]]:
    """The ``.env`` values and the linking coroutine (its result: the linked JID)."""
    from nanoclaw.channels.whatsapp.link import link_session

    values = {
        "NANOCLAW_WHATSAPP_ENABLED": "true",
        "NANOCLAW_WHATSAPP_OWN_NUMBER": "false" if shared else "true",
    }

    def show(text: str) -> None:
        console.print(text, highlight=False, markup=False, soft_wrap=True)

    return values, link_session(settings, show=show, phone=phone, relink=relink)
