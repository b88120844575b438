"""Linking this machine as a WhatsApp device: a QR code in the terminal, or a pairing code.

neonize connects with an empty session and offers QR codes (its ``event.qr`` callback); the
phone scans one (Linked devices → Link a device), neonize reports ``PairStatus`` and then
``Connected``, and the keys are in the session file. With a phone number, the first QR event
means the socket is up: ``PairPhone`` then asks WhatsApp for an 8-character code the user
types on the phone instead (Link with phone number).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nanoclaw.channels.whatsapp import inbound as wa
from nanoclaw.channels.whatsapp import session_path
from nanoclaw.channels.whatsapp.client import ClientFactory, WhatsAppClient, new_client
from nanoclaw.errors import ChannelError
from nanoclaw.settings import Settings

LINK_TIMEOUT_S = 300.0
ACCOUNT_FILE = "account.json"  # next to the session: the linked JID, for messages and status
PAIR_SUCCESS = 2  # neonize.PairStatus.Status: ERROR = 1, SUCCESS = 2


class LinkError(ChannelError):
    """WhatsApp refused the link (or it did not finish in time)."""


def render_qr(code: str) -> str:
    """The QR code as terminal text (segno, pure Python); the raw string if segno is missing."""
    try:
        import segno
    except ImportError:
        return f"(no QR renderer: pip install 'nanoclaw[whatsapp]')\n{code}"
    out = io.StringIO()
    segno.make_qr(code).terminal(out=out, compact=True)
    return out.getvalue()


async def link(
    *,
    client: WhatsAppClient,
    show_qr: Callable[[str], None],
    show_code: Callable[[str], None],
    phone: str | None = None,
    timeout_s: float = LINK_TIMEOUT_S,
) -> str:
    """Link ``client``'s session; the linked account's JID. An already linked one just connects."""
    from neonize.proto import Neonize_pb2 as npb

    socket_up = asyncio.Event()
    connected = asyncio.Event()
    failure: list[str] = []
    shown: list[str] = []

    async def on_qr(_client: Any, data: bytes) -> None:
        socket_up.set()
        code = data.decode("utf-8", errors="replace")
        if phone is None and code not in shown:
            shown.append(code)
            show_qr(code)

    async def on_pair(_client: Any, event: Any) -> None:
        if int(event.Status) != PAIR_SUCCESS:
            failure.append(str(event.Error) or "the phone refused the link")
            connected.set()

    async def on_connected(_client: Any, _event: Any) -> None:
        connected.set()

    client.event.qr(on_qr)
    client.event(npb.PairStatus)(on_pair)
    client.event(npb.Connected)(on_connected)
    try:
        async with asyncio.timeout(timeout_s):
            await client.connect()
            if phone is not None:
                await _wait_either(socket_up, connected)
                if not connected.is_set():
                    show_code(await client.PairPhone(phone.lstrip("+"), True))
            await connected.wait()
    except TimeoutError:
        await _quiet_disconnect(client)
        raise LinkError(
            f"WhatsApp was not linked within {timeout_s:g} s", channel="whatsapp"
        ) from None
    if failure:
        await _quiet_disconnect(client)
        raise LinkError(f"WhatsApp refused the link: {failure[0]}", channel="whatsapp")
    me = await client.get_me()
    await _quiet_disconnect(client)
    return wa.jid_text(me.JID)


async def _wait_either(first: asyncio.Event, second: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()


async def _quiet_disconnect(client: WhatsAppClient) -> None:
    with contextlib.suppress(Exception):  # closing a socket that may already be gone
        await client.disconnect()


def account_path(settings: Settings) -> Path:
    return session_path(settings).with_name(ACCOUNT_FILE)


def linked_account(settings: Settings) -> str | None:
    """The JID linked earlier (``data/whatsapp/account.json``), when its session is there."""
    if not session_path(settings).is_file():
        return None
    try:
        data = json.loads(account_path(settings).read_text())
    except (OSError, ValueError):
        return None
    jid = data.get("jid") if isinstance(data, dict) else None
    return str(jid) if jid else None


async def link_session(
    settings: Settings,
    *,
    show: Callable[[str], None],
    phone: str | None = None,
    relink: bool = False,
    timeout_s: float = LINK_TIMEOUT_S,
    client_factory: ClientFactory | None = None,
) -> str:
    """Link the install's session (unless linked already); the account's JID.

    The account is written to ``account.json`` beside the session file.
    """
    known = None if relink else linked_account(settings)
    if known is not None:
        show(f"WhatsApp is linked already ({known}); use --relink to link again.")
        return known
    path = session_path(settings)
    if relink:
        for stale in (path, account_path(settings)):
            stale.unlink(missing_ok=True)
    client = (client_factory or new_client)(path)

    def qr(code: str) -> None:
        show("Scan this with WhatsApp on your phone (Settings → Linked devices → Link a device):")
        show(render_qr(code))

    def pair_code(code: str) -> None:
        show(
            f"On your phone: WhatsApp → Linked devices → Link a device → Link with phone number"
            f" instead, and enter {code}"
        )

    jid = await link(
        client=client, show_qr=qr, show_code=pair_code, phone=phone, timeout_s=timeout_s
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    account_path(settings).write_text(json.dumps({"jid": jid}) + "\n")
    return jid
