"""The WhatsApp adapter: a linked device on the WhatsApp Web multi-device protocol (neonize).

Inbound: neonize ``Message`` events. Groups (``…@g.us``) engage when the message mentions
the assistant's JID (``contextInfo.mentionedJID``) or quotes one of its messages; direct
chats (``…@s.whatsapp.net`` / ``…@lid``) always do. Images, documents, audio, video and
stickers arrive as attachments (downloaded through the client); a quoted message is the
``reply_to``. Reactions, revocations and other protocol messages never wake an agent.

The assistant's own messages never come back: with its own number (the default) every
``IsFromMe`` message is dropped; with a shared number (``NANOCLAW_WHATSAPP_OWN_NUMBER=false``,
v1's ``ASSISTANT_HAS_OWN_NUMBER=false``) the owner's own messages are input, and the
assistant's replies start with ``<agent name>: `` — a from-me message with that marker, or
with an id this adapter sent, is dropped.

Outbound goes through the channel's ``OutboundScheduler`` (WhatsApp publishes no send limits:
the pacing is our own, conservative). The first part of an answer in a group quotes the message
that mentioned the assistant; files go as images (by suffix) or documents; a reaction goes to
the remembered message; typing is the composing chat presence. Cards are numbered text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mimetypes
from collections import OrderedDict, deque
from pathlib import Path
from typing import Any

from nanoclaw.channels.base import (
    Attachment,
    ChannelAdapter,
    ChannelSetup,
    Health,
    InboundEvent,
    InboundMessage,
    LinkState,
    OutboundFile,
    OutboundPayload,
    split_text,
)
from nanoclaw.channels.cards import card_of
from nanoclaw.channels.filenames import safe_file_name
from nanoclaw.channels.outbound import OutboundScheduler, RateLimits
from nanoclaw.channels.whatsapp import INSTALL_HINT, session_path
from nanoclaw.channels.whatsapp import inbound as wa
from nanoclaw.channels.whatsapp.client import ClientFactory, WhatsAppClient, new_client
from nanoclaw.errors import ChannelError, ConfigError, DeliveryError
from nanoclaw.executors import BlockingExecutor
from nanoclaw.settings import Settings

try:
    from neonize.proto import Neonize_pb2 as npb
    from neonize.utils.enum import ChatPresence, ChatPresenceMedia
except ImportError as _exc:  # the extra is not installed
    raise ConfigError(f"WhatsApp needs neonize: {INSTALL_HINT} ({_exc})") from None

log = logging.getLogger("nanoclaw.channels.whatsapp")

CHANNEL_TYPE = "whatsapp"
MAX_TEXT_CHARS = 65_536  # WhatsApp's own message length limit
MAX_DOWNLOAD_BYTES = 100 * 1024 * 1024  # larger files arrive as a name only
CONNECT_TIMEOUT_S = 60.0
REMEMBERED_MESSAGES = 512  # inbound messages kept to quote and react to
REMEMBERED_SENDS = 1024  # ids of our own sends, to drop their echoes
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
# Our own pacing (WhatsApp publishes no limits; bursts risk a ban).
WHATSAPP_LIMITS = RateLimits(
    per_chat_per_s=1.0, per_chat_burst=3.0, channel_per_s=5.0, channel_burst=10.0
)
IGNORED_SERVERS = ("broadcast", "newsletter")  # status updates, channels


def to_jid(text: str) -> Any:
    """A neonize ``JID`` proto from ``user@server`` (every proto2 required field set)."""
    user, sep, server = text.partition("@")
    if not sep:
        user, server = text, wa.USER_SERVER
    return npb.JID(User=user, Server=server, RawAgent=0, Device=0, Integrator=0, IsEmpty=False)


class NotLinkedError(ChannelError):
    """The session has no linked device (the QR code was offered instead of a login)."""


class WhatsAppAdapter(ChannelAdapter):
    name = "whatsapp"
    channel_type = CHANNEL_TYPE
    max_text_length = MAX_TEXT_CHARS

    def __init__(
        self,
        *,
        session: Path,
        client_factory: ClientFactory = new_client,
        own_number: bool = True,
        assistant_name: str = "Andy",
        outbound: OutboundScheduler | None = None,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        self.session = session
        self.client_factory = client_factory
        self.own_number = own_number
        self.assistant_name = assistant_name
        self.outbound = outbound or OutboundScheduler(channel=CHANNEL_TYPE, limits=WHATSAPP_LIMITS)
        self.connect_timeout_s = connect_timeout_s
        self.client: WhatsAppClient | None = None
        self.own_jids: frozenset[str] = frozenset()
        self._setup: ChannelSetup | None = None
        self._health = Health(LinkState.DISCONNECTED, "not started")
        self._connected = asyncio.Event()
        self._not_linked = asyncio.Event()
        self._recent: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._sent: deque[str] = deque(maxlen=REMEMBERED_SENDS)
        self._markers: set[str] = {self.marker(assistant_name)}
        self._quote_next: dict[str, str] = {}  # chat → the mention the next answer quotes

    @classmethod
    def from_settings(cls, settings: Settings, *, blocking: BlockingExecutor) -> WhatsAppAdapter:
        # ``blocking`` is the registry's common signature; neonize's client runs its own thread.
        return cls(
            session=session_path(settings),
            client_factory=new_client,
            own_number=settings.whatsapp_own_number,
            assistant_name=settings.assistant_name,
        )

    @staticmethod
    def marker(name: str) -> str:
        """What starts every reply on a shared number (v1's ``<ASSISTANT_NAME>: ``)."""
        return f"{name}: "

    # -- lifecycle --------------------------------------------------------------------------------
    async def setup(self, setup: ChannelSetup) -> None:
        self._setup = setup
        self._connected.clear()
        self._not_linked.clear()
        client = self.client_factory(self.session)
        self.client = client
        client.event(npb.Message)(self._on_message)
        client.event(npb.Connected)(self._on_connected)
        client.event(npb.LoggedOut)(self._on_logged_out)
        client.event(npb.Disconnected)(self._on_dropped)
        client.event(npb.KeepAliveTimeout)(self._on_dropped)
        client.event(npb.KeepAliveRestored)(self._on_connected)
        client.event.qr(self._on_qr)
        self._health = Health(LinkState.RECONNECTING, "connecting")
        await client.connect()
        waits = [
            asyncio.ensure_future(self._connected.wait()),
            asyncio.ensure_future(self._not_linked.wait()),
        ]
        try:
            await asyncio.wait(
                waits, timeout=self.connect_timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in waits:
                task.cancel()
        if self._not_linked.is_set() or not self._connected.is_set():
            why = (
                "the session is not linked: run `nanoclaw channels add whatsapp`"
                if self._not_linked.is_set()
                else f"no connection within {self.connect_timeout_s:g} s"
            )
            with contextlib.suppress(Exception):
                await client.disconnect()
            self._health = Health(LinkState.DISCONNECTED, why)
            raise NotLinkedError(why, channel=CHANNEL_TYPE)
        me = await client.get_me()
        self.own_jids = frozenset(j for j in (wa.jid_text(me.JID), wa.jid_text(me.LID)) if j)
        log.info("WhatsApp connected as %s", ", ".join(sorted(self.own_jids)) or "?")

    async def teardown(self) -> None:
        self._health = Health(LinkState.DISCONNECTED, "stopped")
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.disconnect()

    def is_connected(self) -> bool:
        return self.health().state == LinkState.CONNECTED

    def health(self) -> Health:
        if self.client is None:
            return Health(LinkState.DISCONNECTED, self._health.detail)
        return self._health

    async def _on_connected(self, _client: Any, _event: Any) -> None:
        self._health = Health(LinkState.CONNECTED, "linked device")
        self._connected.set()

    async def _on_dropped(self, _client: Any, _event: Any) -> None:
        self._health = Health(LinkState.RECONNECTING, "connection dropped; reconnecting")

    async def _on_logged_out(self, _client: Any, _event: Any) -> None:
        self._health = Health(
            LinkState.DISCONNECTED,
            "logged out from the phone: link again with `nanoclaw channels add whatsapp`",
        )
        log.warning("WhatsApp logged this device out; run `nanoclaw channels add whatsapp`")

    async def _on_qr(self, _client: Any, _code: bytes) -> None:
        # The host never shows a QR code: linking is `nanoclaw channels add whatsapp`.
        self._not_linked.set()

    # -- inbound ----------------------------------------------------------------------------------
    async def _on_message(self, _client: Any, event: Any) -> None:
        """neonize runs this on the loop from its Go thread: nothing may escape it."""
        try:
            await self._handle(event)
        except Exception:
            ident = ""
            with contextlib.suppress(Exception):
                ident = str(event.Info.ID)
            log.exception("WhatsApp message %s could not be handled; skipped", ident or "?")

    def is_own_echo(self, message_id: str, text: str) -> bool:
        return message_id in self._sent or any(text.startswith(m) for m in self._markers)

    async def _handle(self, event: Any) -> None:
        info = event.Info
        source = info.MessageSource
        chat = wa.jid_text(source.Chat)
        message_id = str(info.ID)
        if not chat or not message_id:
            raise ValueError("a message event without a chat or an id")
        if chat.rpartition("@")[2] in IGNORED_SERVERS:
            return
        if (chat, message_id) in self._recent:
            log.debug("WhatsApp message %s delivered again; ignored", message_id)
            return  # a redelivery (e.g. after a reconnect) is not a second message
        message = event.Message
        if wa.is_protocol(message) or wa.is_reaction(message):
            return  # reactions, revocations, key exchange: never a turn
        text = wa.text_of(message)
        if source.IsFromMe and (self.own_number or self.is_own_echo(message_id, text)):
            return  # the assistant's own message
        sender = wa.jid_text(source.Sender)
        media = wa.media_of(message, message_id)
        if not text and media is None:
            log.debug("WhatsApp message %s has no text or media; ignored", message_id)
            return
        is_group = bool(source.IsGroup) or wa.is_group_jid(chat)
        own_users = {j.partition("@")[0] for j in self.own_jids}
        is_mention = (not is_group) or bool(
            self.own_jids & set(wa.mentioned(message))
            or wa.quoted_participant(message) in self.own_jids
        )
        for user in own_users:  # "@4915…" as the assistant's name, for the agent to read
            text = text.replace(f"@{user}", f"@{self.assistant_name}")
        attachments = [] if media is None else [await self._download(message, media)]
        self._remember(chat, message_id, event)
        if is_group and is_mention:
            self._quote_next[chat] = message_id
        inbound = InboundEvent(
            channel_type=CHANNEL_TYPE,
            platform_id=chat,
            thread_id=None,
            message=InboundMessage(
                id=message_id,
                text=text,
                sender=sender or chat,
                sender_name=str(info.Pushname) or None,
                is_mention=is_mention,
                is_group=is_group,
                attachments=tuple(attachments),
                reply_to=wa.reply_of(message),
            ),
        )
        if self._setup is not None:
            await self._setup.on_inbound(inbound)

    def _remember(self, chat: str, message_id: str, event: Any) -> None:
        self._recent[(chat, message_id)] = event
        while len(self._recent) > REMEMBERED_MESSAGES:
            self._recent.popitem(last=False)

    async def _download(self, message: Any, media: wa.Media) -> Attachment:
        name = safe_file_name(media.name, fallback="file")
        if media.size > MAX_DOWNLOAD_BYTES or self.client is None:
            return Attachment(name=name, mime=media.mime)
        try:
            data = await self.client.download_any(wa.media_only(message, media.field))
        except Exception as exc:
            log.warning("WhatsApp file %s could not be downloaded: %s", name, exc)
            return Attachment(name=name, mime=media.mime)
        return Attachment(name=name, mime=media.mime, data=bytes(data))

    # -- outbound ---------------------------------------------------------------------------------
    def _client(self) -> WhatsAppClient:
        if self.client is None:
            raise DeliveryError("WhatsApp is not connected")
        return self.client

    async def deliver(
        self, platform_id: str, thread_id: str | None, payload: OutboundPayload
    ) -> str | None:
        try:
            return await self._deliver(platform_id, payload)
        except DeliveryError:
            raise
        except Exception as exc:  # neonize's SendMessageError and friends
            raise DeliveryError(f"WhatsApp send failed: {type(exc).__name__}: {exc}") from None

    async def _deliver(self, chat: str, payload: OutboundPayload) -> str | None:
        content = payload.content
        operation = content.get("operation")
        target = str(content.get("messageId") or content.get("message_id") or "")
        if operation == "reaction":
            return await self._react(chat, target, str(content.get("emoji") or ""))
        if operation == "edit":
            raise DeliveryError("WhatsApp messages are not edited by NanoClaw", retryable=False)
        found = card_of(payload)
        text = found[0].fallback_text() if found is not None else payload.text
        if text and not self.own_number:
            mark = self.marker(payload.sender_name or self.assistant_name)
            self._markers.add(mark)
            text = mark + text
        quote_id = str(content.get("replyTo") or "") or self._quote_next.pop(chat, "")
        quoted = self._recent.get((chat, quote_id)) if quote_id else None
        sent: list[str] = []
        for chunk in split_text(text, MAX_TEXT_CHARS) if text else []:
            sent.append(await self._send_text(chat, chunk, quoted))
            quoted = None  # only the first part quotes
        for file in payload.files:
            sent.append(await self._send_file(chat, file))
        return sent[0] if sent else None

    async def _send(self, chat: str, call: Any) -> str:
        response = await self.outbound.send(chat, call)
        message_id = str(response.ID)
        self._sent.append(message_id)
        return message_id

    async def _send_text(self, chat: str, text: str, quoted: Any | None) -> str:
        client = self._client()
        to = to_jid(chat)
        if quoted is None:
            return await self._send(chat, lambda: client.send_message(to, text))

        async def reply() -> Any:
            message = await client.build_reply_message(text, quoted)
            return await client.send_message(to, message)

        return await self._send(chat, reply)

    async def _send_file(self, chat: str, file: OutboundFile) -> str:
        client = self._client()
        to = to_jid(chat)
        if file.filename.lower().endswith(IMAGE_SUFFIXES):
            return await self._send(chat, lambda: client.send_image(to, file.data))
        mime = mimetypes.guess_type(file.filename)[0] or "application/octet-stream"
        return await self._send(
            chat,
            lambda: client.send_document(
                to, file.data, title=file.filename, filename=file.filename, mimetype=mime
            ),
        )

    async def _react(self, chat: str, message_id: str, emoji: str) -> str:
        if not message_id or not emoji:
            raise DeliveryError("a reaction needs a message id and an emoji", retryable=False)
        client = self._client()
        known = self._recent.get((chat, message_id))
        if known is not None:
            sender = known.Info.MessageSource.Sender
        elif wa.is_group_jid(chat):
            raise DeliveryError(
                f"WhatsApp: message {message_id} is not known here (its sender is needed)",
                retryable=False,
            )
        else:
            sender = to_jid(chat)  # in a direct chat the other person sent it
        to = to_jid(chat)

        async def react() -> Any:
            message = await client.build_reaction(to, sender, message_id, emoji)
            return await client.send_message(to, message)

        await self._send(chat, react)
        return message_id

    async def set_typing(self, platform_id: str, thread_id: str | None, on: bool) -> None:
        if self.client is None:
            return
        state = ChatPresence.CHAT_PRESENCE_COMPOSING if on else ChatPresence.CHAT_PRESENCE_PAUSED
        with contextlib.suppress(Exception):
            await self.client.send_chat_presence(
                to_jid(platform_id), state, ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT
            )

    async def open_dm(self, handle: str) -> str | None:
        """A person's direct chat id is their JID."""
        return handle.split(":", 1)[1] if handle.startswith(f"{CHANNEL_TYPE}:") else handle
