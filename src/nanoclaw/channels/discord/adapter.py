"""The Discord adapter: discord.py's gateway client for guild channels, threads and DMs.

Inbound: guild messages engage when they mention the bot, a role it holds, or reply to it
(``inbound.py``); DMs always engage. A thread is a thread (``thread_id``) of its parent
channel. Attachments are downloaded from the URL Discord gives (its CDN). Edits and deletions
are ignored: ``on_message_edit`` is not handled, so an edited message is never re-read, and
reactions people add are not read. Messages are handled one at a time in gateway order.

Outbound goes through the channel's ``OutboundScheduler``: discord.py itself follows the
``X-RateLimit-*`` buckets and sleeps a 429's ``retry_after`` when it is at most
``MAX_INLINE_RATE_WAIT_S``; a longer wait comes back as ``discord.RateLimited`` and becomes
the scheduler's flood wait for that chat (the delivery is deferred, not failed). Text is split
at 2,000 characters; files go up to 10 per message. Cards are buttons (components) whose
custom ids are ``ncq:<question id>:<index>`` (at most 100 characters, 25 buttons); a card that
does not fit is numbered text. A click is answered through the interaction callback: the card
becomes its answer, or the clicker alone sees why it was not accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import discord

from nanoclaw.cancel import cancel_and_wait
from nanoclaw.channels.base import (
    Attachment,
    Card,
    ChannelAdapter,
    ChannelSetup,
    Health,
    InboundEvent,
    InboundMessage,
    LinkState,
    OutboundPayload,
    split_text,
    user_id_of,
)
from nanoclaw.channels.card_memory import CardMemory
from nanoclaw.channels.cards import Refusal, answered_text, button_data, card_of, parse_button_data
from nanoclaw.channels.discord import inbound as dc
from nanoclaw.channels.discord.intents import MessageContentIntentError
from nanoclaw.channels.discord.seam import point_gateway_at, point_rest_at
from nanoclaw.channels.filenames import safe_file_name
from nanoclaw.channels.outbound import (
    OutboundScheduler,
    PartialSends,
    PlatformRateLimitError,
    RateLimits,
)
from nanoclaw.errors import ChannelError, DeliveryError
from nanoclaw.executors import BlockingExecutor
from nanoclaw.settings import Settings

log = logging.getLogger("nanoclaw.channels.discord")

T = TypeVar("T")

CHANNEL_TYPE = "discord"
MAX_TEXT_CHARS = 2000  # Discord API docs: Message › Create Message (content)
MAX_FILES_PER_MESSAGE = 10
MAX_CUSTOM_ID_CHARS = 100  # Discord API docs: Components › Button
MAX_BUTTONS = 25  # 5 action rows of 5 buttons
MAX_LABEL_CHARS = 80
MAX_DOWNLOAD_BYTES = 25 * 1024 * 1024
MAX_INLINE_RATE_WAIT_S = 5.0  # discord.py sleeps shorter 429 waits itself; longer ones defer
READY_TIMEOUT_S = 60.0
GUILD_READY_TIMEOUT_S = 2.0  # discord.py's wait for the GUILD_CREATEs after READY
CARD_MEMORY_FILE = "discord-cards.json"
PERMANENT_STATUSES = frozenset({400, 401, 403, 404, 413})
# Discord documents no fixed per-channel rate (it sends buckets in headers, which discord.py
# follows); these keep a burst of 5 per chat and the documented global 50 requests per second.
DISCORD_LIMITS = RateLimits(
    per_chat_per_s=1.0, per_chat_burst=5.0, channel_per_s=50.0, channel_burst=50.0
)


def intents() -> discord.Intents:
    """Guilds, guild and DM messages, and the privileged Message Content intent."""
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_messages = True
    wanted.dm_messages = True
    wanted.message_content = True
    return wanted


def fits_buttons(card: Card) -> bool:
    return (
        0 < len(card.options) <= MAX_BUTTONS
        and len(button_data(card, len(card.options))) <= MAX_CUSTOM_ID_CHARS
    )


class _Client(discord.Client):
    """discord.py's client, handing every event to the adapter."""

    def __init__(self, *, adapter: DiscordAdapter, **options: Any) -> None:
        super().__init__(**options)
        self._adapter = adapter

    async def on_ready(self) -> None:
        self._adapter.link_changed(up=True, detail="gateway")

    async def on_resumed(self) -> None:
        self._adapter.link_changed(up=True, detail="gateway (resumed)")

    async def on_disconnect(self) -> None:
        self._adapter.link_changed(up=False, detail="gateway reconnecting")

    async def on_message(self, message: discord.Message) -> None:
        self._adapter.received(message)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        await self._adapter.on_interaction(interaction)


class DiscordAdapter(ChannelAdapter):
    name = "discord"
    channel_type = CHANNEL_TYPE
    supports_threads = True
    supports_buttons = True
    max_text_length = MAX_TEXT_CHARS

    def __init__(
        self,
        *,
        blocking: BlockingExecutor,
        bot_token: str,
        api_base_url: str,
        card_memory: CardMemory | None = None,
        outbound: OutboundScheduler | None = None,
        guild_ready_timeout_s: float = GUILD_READY_TIMEOUT_S,
        max_inline_rate_wait_s: float = MAX_INLINE_RATE_WAIT_S,
    ) -> None:
        self.bot_token = bot_token
        self.api_base_url = api_base_url
        self.outbound = outbound or OutboundScheduler(channel=CHANNEL_TYPE, limits=DISCORD_LIMITS)
        self.guild_ready_timeout_s = guild_ready_timeout_s
        self.max_inline_rate_wait_s = max_inline_rate_wait_s
        self.client: _Client | None = None
        self.bot_id: int | None = None
        self._setup: ChannelSetup | None = None
        self._runner: asyncio.Task[None] | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[discord.Message] = asyncio.Queue()
        self._ready = asyncio.Event()
        self._health = Health(LinkState.DISCONNECTED, "not started")
        self._fatal: ChannelError | None = None
        self._cards = card_memory or CardMemory(path=None)
        self.blocking = blocking  # the card memory's file writes
        self._card_sending = asyncio.Lock()  # a click waits until its card is remembered
        self._partial = PartialSends()

    @classmethod
    def from_settings(cls, settings: Settings, *, blocking: BlockingExecutor) -> DiscordAdapter:
        assert settings.discord_bot_token is not None
        return cls(
            blocking=blocking,
            bot_token=settings.discord_bot_token.get_secret_value(),
            api_base_url=settings.discord_api_base_url,
            card_memory=CardMemory(path=settings.data_path / "channels" / CARD_MEMORY_FILE),
            guild_ready_timeout_s=settings.discord_guild_ready_timeout_s,
        )

    # -- lifecycle --------------------------------------------------------------------------------
    async def setup(self, setup: ChannelSetup) -> None:
        self._setup = setup
        self._fatal = None
        self._ready = asyncio.Event()
        point_rest_at(self.api_base_url)
        client = _Client(
            adapter=self,
            intents=intents(),
            max_ratelimit_timeout=self.max_inline_rate_wait_s,
            guild_ready_timeout=self.guild_ready_timeout_s,
        )
        self.client = client
        try:
            await client.login(self.bot_token)
        except discord.LoginFailure:
            raise ChannelError(
                "Discord rejected the bot token (401); copy it again from the Developer Portal"
                " → Bot → Reset Token",
                channel=CHANNEL_TYPE,
            ) from None
        assert client.user is not None
        self.bot_id = client.user.id
        _shards, gateway_url, _limits = await client.http.get_bot_gateway()
        point_gateway_at(gateway_url)
        self._runner = asyncio.ensure_future(self._run(client))
        self._runner.set_name("discord-gateway")
        ready = asyncio.ensure_future(self._ready.wait())
        try:
            await asyncio.wait(
                {ready, self._runner}, timeout=READY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            ready.cancel()
        if not self._ready.is_set():
            raise self._fatal or ChannelError(
                "the Discord gateway did not become ready", channel=CHANNEL_TYPE
            )
        self._consumer = asyncio.ensure_future(self._consume())
        self._consumer.set_name("discord-inbound")
        log.info("Discord connected as %s (gateway)", client.user)

    async def _run(self, client: _Client) -> None:
        try:
            await client.connect(reconnect=True)
        except discord.PrivilegedIntentsRequired:
            self._fatal = MessageContentIntentError()
        except Exception as exc:
            self._fatal = ChannelError(f"Discord gateway stopped: {exc}", channel=CHANNEL_TYPE)
        if self._fatal is not None:
            log.error("%s", self._fatal)
            self._health = Health(LinkState.DISCONNECTED, str(self._fatal))

    async def teardown(self) -> None:
        self._health = Health(LinkState.DISCONNECTED, "stopped")
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()
        for task in (self._consumer, self._runner):
            if task is not None:
                await cancel_and_wait(task)
        self._consumer = self._runner = None

    def link_changed(self, *, up: bool, detail: str) -> None:
        if up:
            self._ready.set()
        self._health = Health(LinkState.CONNECTED if up else LinkState.RECONNECTING, detail)

    def is_connected(self) -> bool:
        return self.health().state == LinkState.CONNECTED

    def health(self) -> Health:
        if self._runner is None or self._runner.done():
            detail = str(self._fatal) if self._fatal is not None else self._health.detail
            return Health(LinkState.DISCONNECTED, detail)
        return self._health

    # -- inbound ----------------------------------------------------------------------------------
    def received(self, message: discord.Message) -> None:
        if dc.is_user_message(message, bot_id=self.bot_id):
            self._queue.put_nowait(message)

    async def _consume(self) -> None:
        while True:
            message = await self._queue.get()
            try:
                await self._on_message(message)
            except Exception as exc:
                # Never dropped silently: the sender hears that it failed.
                log.exception("Discord message %s failed", message.id)
                with contextlib.suppress(Exception):
                    await message.channel.send(
                        f"Your message could not be handled ({type(exc).__name__});"
                        " please send it again."
                    )

    async def _parent_of(self, channel: Any) -> int | None:
        """The parent channel id when ``channel`` is a thread (asking Discord if not cached)."""
        if isinstance(channel, discord.Thread):
            return channel.parent_id
        if isinstance(channel, discord.PartialMessageable) and channel.guild_id is not None:
            assert self.client is not None
            fetched = await self.client.fetch_channel(channel.id)
            return fetched.parent_id if isinstance(fetched, discord.Thread) else None
        return None

    async def _on_message(self, message: discord.Message) -> None:
        is_group = not isinstance(message.channel, discord.DMChannel)  # bots have no group DMs
        platform_id, thread_id = dc.chat_of(
            message, parent_id=await self._parent_of(message.channel) if is_group else None
        )
        event = InboundEvent(
            channel_type=CHANNEL_TYPE,
            platform_id=platform_id,
            thread_id=thread_id,
            message=InboundMessage(
                id=str(message.id),
                text=message.clean_content,
                sender=str(message.author.id),
                sender_name=message.author.display_name,
                is_mention=(not is_group) or dc.mentions_bot(message, bot_id=self.bot_id),
                is_group=is_group,
                timestamp=message.created_at.isoformat(),
                attachments=tuple(await self._attachments(message)),
                reply_to=dc.reply_of(message),
            ),
        )
        if self._setup is not None:
            await self._setup.on_inbound(event)

    async def _attachments(self, message: discord.Message) -> list[Attachment]:
        found: list[Attachment] = []
        for item in message.attachments:
            name = safe_file_name(item.filename, fallback=f"attachment-{item.id}")
            if item.size > MAX_DOWNLOAD_BYTES:
                found.append(Attachment(name=name, mime=item.content_type))
                continue
            try:
                data = await item.read()
            except discord.HTTPException as exc:
                log.warning("Discord attachment %s could not be downloaded: %s", name, exc)
                found.append(Attachment(name=name, mime=item.content_type))
                continue
            found.append(Attachment(name=name, mime=item.content_type, data=data))
        return found

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        if interaction.type != discord.InteractionType.component:
            return
        data: Any = interaction.data or {}
        parsed = parse_button_data(str(data.get("custom_id") or ""))
        if parsed is None or self._setup is None or self._setup.on_action is None:
            await interaction.response.send_message("Not accepted.", ephemeral=True)
            return
        question_id, index = parsed
        chat_id = str(interaction.channel_id)
        message_id = str(interaction.message.id) if interaction.message is not None else ""
        async with self._card_sending:
            known = self._cards.recall(chat_id, message_id)
        value, label, title = "", "", ""
        if known is not None and index < len(known[0].options):
            card, selected = known
            option = card.options[index]
            value, label, title = option.value, selected.get(option.value, option.label), card.title
        else:  # a card sent before the memory existed: its button's label is all we have
            label = value = _button_label(interaction.message, str(data.get("custom_id")))
        answer = await self._setup.on_action(
            question_id, value, user_id_of(CHANNEL_TYPE, str(interaction.user.id))
        )
        if answer is None or isinstance(answer, Refusal):
            await interaction.response.send_message(answer or "Not accepted.", ephemeral=True)
            return
        done = answered_text(Card("", title, "", ()), label, answer)
        await interaction.response.edit_message(content=done[:MAX_TEXT_CHARS], view=None)
        await self.blocking.run(self._cards.forget, chat_id, message_id)

    # -- outbound ---------------------------------------------------------------------------------
    def _channel(self, channel_id: str) -> discord.PartialMessageable:
        if self.client is None:
            raise DeliveryError("Discord is not connected", retryable=True)
        return self.client.get_partial_messageable(int(channel_id))

    async def _send(self, chat: str, call: Callable[[], Awaitable[T]]) -> T:
        async def attempt() -> T:
            try:
                return await call()
            except discord.RateLimited as exc:
                raise PlatformRateLimitError(
                    f"Discord rate limit: retry after {exc.retry_after:.1f} s",
                    channel=CHANNEL_TYPE,
                    retry_after_s=exc.retry_after,
                ) from None

        return await self.outbound.send(chat, attempt)

    async def deliver(
        self, platform_id: str, thread_id: str | None, payload: OutboundPayload
    ) -> str | None:
        try:
            return await self._deliver(thread_id or platform_id, payload)
        except discord.HTTPException as exc:
            raise DeliveryError(
                f"Discord answered {exc.status}: {exc.text or exc}",
                retryable=exc.status not in PERMANENT_STATUSES,
            ) from None

    async def _deliver(self, chat: str, payload: OutboundPayload) -> str | None:
        content = payload.content
        operation = content.get("operation")
        target = content.get("messageId") or content.get("message_id")
        channel = self._channel(chat)
        if operation == "edit":
            message = channel.get_partial_message(int(str(target)))
            # An edit is one message: text beyond 2,000 characters is cut.
            await self._send(chat, lambda: message.edit(content=payload.text[:MAX_TEXT_CHARS]))
            return str(target)
        if operation == "reaction":
            message = channel.get_partial_message(int(str(target)))
            emoji = str(content.get("emoji") or "")
            await self._send(chat, lambda: message.add_reaction(emoji))
            return str(target)
        found = card_of(payload)
        if found is not None:
            return await self._send_card(chat, channel, *found)
        # Parts already sent survive a deferred retry (outbound.PartialSends): none goes twice.
        key = PartialSends.key(
            chat, None, payload.text, *(f.filename for f in payload.files),
            *(f.data for f in payload.files),
        )  # fmt: skip
        sent_ids = self._partial.sent(key)
        parts: list[tuple[str, list[discord.File]]] = []
        if payload.text:
            parts += [(chunk, []) for chunk in split_text(payload.text, MAX_TEXT_CHARS)]
        files = list(payload.files)
        for start in range(0, len(files), MAX_FILES_PER_MESSAGE):
            batch = files[start : start + MAX_FILES_PER_MESSAGE]
            parts.append(
                (
                    "",
                    [
                        discord.File(
                            io.BytesIO(f.data), filename=safe_file_name(f.filename, fallback="file")
                        )
                        for f in batch
                    ],
                )
            )
        for index, (chunk, attached) in enumerate(parts):
            if index < len(sent_ids):
                continue
            sent = await self._send(chat, _post(channel, chunk, attached))
            sent_ids.append(str(sent.id))
        self._partial.done(key)
        return sent_ids[0] if sent_ids else None

    async def _send_card(
        self,
        chat: str,
        channel: discord.PartialMessageable,
        card: Card,
        selected: dict[str, str],
    ) -> str:
        if not fits_buttons(card):
            sent = await self._send(
                chat, lambda: channel.send(content=card.fallback_text()[:MAX_TEXT_CHARS])
            )
            return str(sent.id)
        view = discord.ui.View(timeout=None)
        for i, option in enumerate(card.options):
            view.add_item(
                discord.ui.Button(
                    label=option.label[:MAX_LABEL_CHARS] or str(i + 1),
                    custom_id=button_data(card, i),
                    style=discord.ButtonStyle.secondary,
                )
            )
        view.stop()  # clicks are read in on_interaction, not by discord.py's view store
        text = f"{card.title}\n\n{card.question}" if card.title else card.question
        async with self._card_sending:
            sent = await self._send(
                chat, lambda: channel.send(content=text[:MAX_TEXT_CHARS], view=view)
            )
            await self.blocking.run(self._cards.remember, chat, str(sent.id), card, selected)
        return str(sent.id)

    async def set_typing(self, platform_id: str, thread_id: str | None, on: bool) -> None:
        if on and self.client is not None:  # shows for 10 s; the host refreshes it every 4 s
            with contextlib.suppress(discord.HTTPException):
                await self.client.http.send_typing(int(thread_id or platform_id))

    async def open_dm(self, handle: str) -> str | None:
        """The DM channel with a user (``POST /users/@me/channels``)."""
        user_id = handle.split(":", 1)[1] if handle.startswith(f"{CHANNEL_TYPE}:") else handle
        if self.client is None or not user_id.isdigit():
            return None
        dm = await self.client.create_dm(discord.Object(id=int(user_id)))
        return str(dm.id)


def _post(
    channel: discord.PartialMessageable, text: str, files: list[discord.File]
) -> Callable[[], Awaitable[discord.Message]]:
    """One message send, as a call the scheduler can repeat after a rate limit."""

    async def call() -> discord.Message:
        if files:
            for file in files:
                file.reset()  # a repeated call re-reads each file from its start
            return await channel.send(files=files)
        return await channel.send(content=text)

    return call


def _button_label(message: discord.Message | None, custom_id: str) -> str:
    if message is None:
        return ""
    for row in message.components:
        for child in getattr(row, "children", []):
            if getattr(child, "custom_id", None) == custom_id:
                return str(getattr(child, "label", "") or "")
    return ""
