"""The Telegram adapter: Bot API long polling (no public URL), private chats, groups, forums.

Inbound: service messages (pins, joins, topic changes) never wake an agent; a group
upgraded to a supergroup is re-wired to its new id (``ChannelSetup.on_migrate``). In
groups a message engages when its entities mention the bot (``@username``, a text
mention, ``/command@username``) or it replies to one of the bot's messages. Forum topics
are threads. Every media kind arrives as an attachment (photo, voice, audio, video,
video note, animation, sticker, document; downloaded through ``getFile``) and location,
contact, venue, poll and dice as readable text. An anonymous group admin (``sender_chat``
is the chat itself) is one stable sender, ``admin-of-<chat>``. A reply carries the
replied-to message (or the user's quote of it).

Polling deletes a leftover webhook first (and logs it); a 409 conflict shows as the
``conflict`` link state in ``status`` and ``doctor``. Outbound goes through the channel's
``OutboundScheduler``: flood control's ``retry_after`` is honoured per chat. Replies are
Markdown → HTML split at 4,096 characters; a 400 parse error resends the chunk as plain
text. Reactions use Telegram's allowed set (telegram/reactions.py). Cards are inline
keyboards whose callback data (``ncq:<qid>:<i>``) fits in 64 bytes; option values live in
a ``CardMemory`` file, so buttons keep working across restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import httpx

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
    OutboundFile,
    OutboundPayload,
    split_text,
    user_id_of,
)
from nanoclaw.channels.card_memory import CardMemory
from nanoclaw.channels.cards import (
    Refusal,
    answered_text,
    button_data,
    card_of,
    fits_callback_data,
    parse_button_data,
)
from nanoclaw.channels.outbound import OutboundScheduler, PartialSends, RateLimits
from nanoclaw.channels.telegram import inbound as tg
from nanoclaw.channels.telegram.api import TelegramApi, TelegramApiError, TelegramFloodWaitError
from nanoclaw.channels.telegram.html import to_html
from nanoclaw.channels.telegram.reactions import ReactionNotAllowedError, allowed_reaction
from nanoclaw.errors import DeliveryError
from nanoclaw.executors import BlockingExecutor
from nanoclaw.settings import Settings

log = logging.getLogger("nanoclaw.channels.telegram")

CHANNEL_TYPE = "telegram"
MAX_TEXT_CHARS = 4096
MARKUP_HEADROOM_CHARS = 596  # split the Markdown smaller, so its HTML still fits
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024  # the Bot API's getFile limit
POLL_ERROR_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp")
PERMANENT_CODES = frozenset({400, 401, 403, 404})
CARD_MEMORY_FILE = "telegram-cards.json"
# Bot API FAQ: about one message per second in a chat (short bursts pass), 30 per second overall.
TELEGRAM_LIMITS = RateLimits(
    per_chat_per_s=1.0, per_chat_burst=3.0, channel_per_s=30.0, channel_burst=30.0
)
ALLOWED_UPDATES = ("message", "callback_query")


def _thread_params(thread_id: str | None) -> dict[str, Any]:
    return {"message_thread_id": int(thread_id)} if thread_id and thread_id.isdigit() else {}


class TelegramAdapter(ChannelAdapter):
    name = "telegram"
    channel_type = CHANNEL_TYPE
    supports_threads = True  # forum topics
    supports_buttons = True
    max_text_length = MAX_TEXT_CHARS

    def __init__(
        self,
        *,
        blocking: BlockingExecutor,
        bot_token: str,
        api_base_url: str = "https://api.telegram.org",
        poll_timeout_s: int = 30,
        http_client: httpx.AsyncClient | None = None,
        card_memory: CardMemory | None = None,
        outbound: OutboundScheduler | None = None,
    ) -> None:
        self.api = TelegramApi(token=bot_token, base_url=api_base_url, client=http_client)
        self.poll_timeout_s = poll_timeout_s
        self.outbound = outbound or OutboundScheduler(channel=CHANNEL_TYPE, limits=TELEGRAM_LIMITS)
        self._setup: ChannelSetup | None = None
        self._poller: asyncio.Task[None] | None = None
        self._health = Health(LinkState.DISCONNECTED, "not started")
        self.bot_id: int | None = None
        self.username: str | None = None
        self._offset: int | None = None
        self._cards = card_memory or CardMemory(path=None)
        self.blocking = blocking  # the card memory's file writes
        self._card_sending = asyncio.Lock()  # a click waits until its card is remembered
        self._partial = PartialSends()
        self.webhook_deleted: str | None = None  # the leftover webhook polling removed

    @classmethod
    def from_settings(cls, settings: Settings, *, blocking: BlockingExecutor) -> TelegramAdapter:
        assert settings.telegram_bot_token is not None
        return cls(
            blocking=blocking,
            bot_token=settings.telegram_bot_token.get_secret_value(),
            api_base_url=settings.telegram_api_base_url,
            poll_timeout_s=settings.telegram_poll_timeout_s,
            card_memory=CardMemory(path=settings.data_path / "channels" / CARD_MEMORY_FILE),
        )

    # -- lifecycle --------------------------------------------------------------------------------
    async def setup(self, setup: ChannelSetup) -> None:
        self._setup = setup
        me = await self.api.call("getMe")
        self.bot_id = int(me["id"])
        self.username = str(me.get("username") or "")
        await self._delete_webhook()
        self._health = Health(LinkState.CONNECTED, "long polling")
        self._poller = asyncio.ensure_future(self._poll())
        self._poller.set_name("telegram-poll")
        log.info("Telegram connected as @%s (long polling)", self.username)

    async def _delete_webhook(self) -> None:
        """getUpdates answers 409 while a webhook is set: remove one left by another tool."""
        info = await self.api.call("getWebhookInfo")
        url = str((info or {}).get("url") or "")
        if not url:
            return
        await self.api.call("deleteWebhook", {"drop_pending_updates": False})
        self.webhook_deleted = url.split("?", 1)[0]
        log.warning(
            "Telegram: a webhook was set (%s); deleted it so long polling can receive updates",
            self.webhook_deleted,
        )

    async def teardown(self) -> None:
        self._health = Health(LinkState.DISCONNECTED, "stopped")
        if self._poller is not None:
            await cancel_and_wait(self._poller)
            self._poller = None

    def is_connected(self) -> bool:
        return self.health().state == LinkState.CONNECTED

    def health(self) -> Health:
        if self._poller is None or self._poller.done():
            return Health(LinkState.DISCONNECTED, self._health.detail)
        return self._health

    async def _poll(self) -> None:
        failures = 0
        while True:
            try:
                updates = await self.api.call(
                    "getUpdates",
                    {
                        "offset": self._offset,
                        "timeout": self.poll_timeout_s,
                        "allowed_updates": list(ALLOWED_UPDATES),
                    },
                    timeout_s=self.poll_timeout_s + 10.0,
                )
            except TelegramFloodWaitError as exc:
                self._health = Health(LinkState.RECONNECTING, str(exc))
                await asyncio.sleep(exc.retry_after_s)
                continue
            except TelegramApiError as exc:
                delay = POLL_ERROR_BACKOFF_S[min(failures, len(POLL_ERROR_BACKOFF_S) - 1)]
                failures += 1
                if exc.code == 409:
                    self._health = Health(
                        LinkState.CONFLICT,
                        f"409 Conflict: {exc.description} (another bot instance or a webhook"
                        " uses this token)",
                    )
                    if "webhook" in exc.description.lower():
                        with contextlib.suppress(TelegramApiError, TelegramFloodWaitError):
                            await self._delete_webhook()
                else:
                    self._health = Health(LinkState.RECONNECTING, str(exc))
                log.warning("Telegram getUpdates failed (%s); retrying in %ss", exc, delay)
                await asyncio.sleep(delay)
                continue
            failures = 0
            self._health = Health(LinkState.CONNECTED, "long polling")
            for update in updates or []:
                try:
                    await self._handle(update)
                except Exception as exc:
                    # Never acknowledged silently: the sender hears that it failed.
                    log.exception("Telegram update %s failed", update.get("update_id"))
                    await self._tell_unhandled(update, exc)
                # The next getUpdates with this offset acknowledges the update (Bot API).
                self._offset = int(update["update_id"]) + 1

    async def _tell_unhandled(self, update: dict[str, Any], exc: Exception) -> None:
        msg = update.get("message") or {}
        chat = (msg.get("chat") or {}).get("id")
        if chat is None:
            return
        with contextlib.suppress(Exception):
            await self.deliver(
                str(chat),
                tg.topic_of(msg),
                OutboundPayload(
                    kind="chat",
                    content={
                        "text": f"Your message could not be handled ({type(exc).__name__});"
                        " please send it again."
                    },
                ),
            )

    # -- inbound ----------------------------------------------------------------------------------
    async def _handle(self, update: dict[str, Any]) -> None:
        if "callback_query" in update:
            await self._on_callback(update["callback_query"])
        elif "message" in update:  # edited_message is not requested: edits are ignored
            await self._on_message(update["message"])

    async def _on_message(self, msg: dict[str, Any]) -> None:
        chat = msg.get("chat") or {}
        chat_id = str(chat.get("id"))
        if tg.is_service(msg):
            await self._on_service(msg, chat_id)
            return  # a pin, a join, a topic change: never an agent's turn
        sender = msg.get("from") or {}
        sender_chat = msg.get("sender_chat") or {}
        if sender_chat and sender_chat.get("id") == chat.get("id"):
            # An anonymous administrator posting as the group (from = GroupAnonymousBot).
            handle = f"admin-of-{chat_id}"
            name = f"{chat.get('title') or 'group'} (anonymous admin)"
        elif sender.get("is_bot") or "id" not in sender:
            return
        else:
            handle = str(sender["id"])
            name = tg.sender_name(sender) or handle
        is_group = chat.get("type") != "private"
        replied = msg.get("reply_to_message") or {}
        reply_to = tg.reply_of(msg)
        is_mention = (not is_group) or tg.mentions_bot(
            msg, bot_id=self.bot_id, username=self.username
        )
        if (
            reply_to is not None
            and self.bot_id is not None
            and (replied.get("from") or {}).get("id") == self.bot_id
        ):
            is_mention = True
        text = tg.strip_own_command_suffix(tg.describe(msg), self.username)
        event = InboundEvent(
            channel_type=CHANNEL_TYPE,
            platform_id=chat_id,
            thread_id=tg.topic_of(msg),
            message=InboundMessage(
                id=str(msg.get("message_id")),
                text=text,
                sender=handle,
                sender_name=name,
                is_mention=is_mention,
                is_group=is_group,
                attachments=tuple(await self._attachments(msg)),
                reply_to=reply_to,
            ),
        )
        if self._setup is not None:
            await self._setup.on_inbound(event)

    async def _on_service(self, msg: dict[str, Any], chat_id: str) -> None:
        new_id = msg.get("migrate_to_chat_id")
        if new_id is not None:
            await self._migrated(chat_id, str(new_id))

    async def _migrated(self, old_id: str, new_id: str) -> None:
        log.info("Telegram chat %s was upgraded to supergroup %s; re-wiring it", old_id, new_id)
        if self._setup is not None and self._setup.on_migrate is not None:
            await self._setup.on_migrate(CHANNEL_TYPE, old_id, new_id)

    async def _attachments(self, msg: dict[str, Any]) -> list[Attachment]:
        found: list[Attachment] = []
        for item in tg.media_of(msg):
            if item.size > MAX_DOWNLOAD_BYTES:
                found.append(Attachment(name=item.name, mime=item.mime))
                continue
            try:
                info = await self.api.call("getFile", {"file_id": item.file_id})
                data = await self.api.download(str(info["file_path"]))
                found.append(Attachment(name=item.name, mime=item.mime, data=data))
            except (TelegramApiError, TelegramFloodWaitError) as exc:
                log.warning("Telegram file %s could not be downloaded: %s", item.name, exc)
                found.append(Attachment(name=item.name, mime=item.mime))
        return found

    async def _on_callback(self, query: dict[str, Any]) -> None:
        data = str(query.get("data") or "")
        parsed = parse_button_data(data)
        message = query.get("message") or {}
        chat_id = str((message.get("chat") or {}).get("id"))
        message_id = int(message.get("message_id") or 0)
        answer: str | None = None
        label = ""
        title = ""
        if parsed is not None and self._setup is not None and self._setup.on_action is not None:
            question_id, index = parsed
            async with self._card_sending:
                known = self._cards.recall(chat_id, str(message_id))
            if known is not None and index < len(known[0].options):
                card, selected = known
                option = card.options[index]
                value, label, title = (
                    option.value,
                    selected.get(option.value, option.label),
                    card.title,
                )
            else:  # a card sent before the memory existed: its button's label is all we have
                for row in (message.get("reply_markup") or {}).get("inline_keyboard") or []:
                    for button in row:
                        if button.get("callback_data") == data:
                            label = str(button.get("text") or "")
                value = label
            user = str((query.get("from") or {}).get("id"))
            answer = await self._setup.on_action(question_id, value, user_id_of(CHANNEL_TYPE, user))
        with contextlib.suppress(TelegramApiError, TelegramFloodWaitError):
            await self.api.call(
                "answerCallbackQuery",
                {"callback_query_id": query.get("id"), "text": (answer or "Not accepted.")[:200]},
            )
        if answer is not None and not isinstance(answer, Refusal) and message_id:
            done = answered_text(Card("", title, "", ()), label, answer)
            with contextlib.suppress(
                TelegramApiError, TelegramFloodWaitError
            ):  # no reply_markup: the buttons go away
                await self.api.call(
                    "editMessageText", {"chat_id": chat_id, "message_id": message_id, "text": done}
                )
            await self.blocking.run(self._cards.forget, chat_id, str(message_id))

    # -- outbound ---------------------------------------------------------------------------------
    async def _call(
        self,
        chat_id: str,
        method: str,
        params: dict[str, Any],
        files: dict[str, tuple[str, bytes]] | None = None,
    ) -> Any:
        """One send into a chat, through the scheduler; a migrated chat is followed once."""
        try:
            return await self.outbound.send(
                chat_id, lambda: self.api.call(method, params, files=files)
            )
        except TelegramApiError as exc:
            if exc.migrate_to_chat_id is None:
                raise
            new_id = str(exc.migrate_to_chat_id)
            await self._migrated(chat_id, new_id)
            moved = {**params, "chat_id": new_id}
            return await self.outbound.send(
                new_id, lambda: self.api.call(method, moved, files=files)
            )

    async def deliver(
        self, platform_id: str, thread_id: str | None, payload: OutboundPayload
    ) -> str | None:
        try:
            return await self._deliver(platform_id, thread_id, payload)
        except TelegramApiError as exc:
            raise DeliveryError(
                str(exc), retryable=exc.code is None or exc.code not in PERMANENT_CODES
            ) from None

    async def _deliver(
        self, chat_id: str, thread_id: str | None, payload: OutboundPayload
    ) -> str | None:
        content = payload.content
        operation = content.get("operation")
        target = content.get("messageId") or content.get("message_id")
        if operation == "edit":
            message_id = int(str(target))
            await self._send_text(
                chat_id,
                "editMessageText",
                {"chat_id": chat_id, "message_id": message_id},
                payload.text,
            )
            return str(message_id)
        if operation == "reaction":
            return await self._react(chat_id, int(str(target)), str(content.get("emoji") or ""))
        found = card_of(payload)
        if found is not None:
            return await self._send_card(chat_id, thread_id, *found)
        # Parts already sent survive a deferred retry (outbound.PartialSends): none goes twice.
        key = PartialSends.key(
            chat_id,
            thread_id,
            payload.text,
            *(f.filename for f in payload.files),
            *(f.data for f in payload.files),
        )
        sent_ids = self._partial.sent(key)
        parts: list[tuple[str, OutboundFile | None]] = []
        if payload.text:
            chunks = split_text(payload.text, MAX_TEXT_CHARS - MARKUP_HEADROOM_CHARS)
            parts += [(chunk, None) for chunk in chunks]
        parts += [("", file) for file in payload.files]
        base = {"chat_id": chat_id, **_thread_params(thread_id)}
        for index, (chunk, file) in enumerate(parts):
            if index < len(sent_ids):
                continue
            if file is None:
                sent = await self._send_text(chat_id, "sendMessage", dict(base), chunk)
            else:
                sent = await self._send_file(chat_id, base, file)
            sent_ids.append(str(sent["message_id"]))
        self._partial.done(key)
        return sent_ids[0] if sent_ids else None

    async def _react(self, chat_id: str, message_id: int, emoji: str) -> str:
        chosen = allowed_reaction(emoji)  # ReactionNotAllowedError tells the agent the allowed set
        try:
            await self._call(
                chat_id,
                "setMessageReaction",
                {
                    "chat_id": chat_id,
                    "message_id": message_id,
                    "reaction": [{"type": "emoji", "emoji": chosen}],
                },
            )
        except TelegramApiError as exc:
            if "REACTION_INVALID" in exc.description:
                raise ReactionNotAllowedError(emoji) from None
            raise
        return str(message_id)

    async def _send_text(
        self, chat_id: str, method: str, params: dict[str, Any], markdown: str
    ) -> Any:
        """HTML when it fits and parses; plain text otherwise (formatting never breaks a send)."""
        rendered = to_html(markdown)
        if len(rendered) <= MAX_TEXT_CHARS:
            try:
                return await self._call(
                    chat_id, method, {**params, "text": rendered, "parse_mode": "HTML"}
                )
            except TelegramApiError as exc:
                if exc.code != 400 or "parse" not in exc.description.lower():
                    raise
                log.info("Telegram rejected the HTML (%s); sending plain text", exc.description)
        return await self._call(chat_id, method, {**params, "text": markdown[:MAX_TEXT_CHARS]})

    async def _send_file(self, chat_id: str, base: dict[str, Any], file: OutboundFile) -> Any:
        is_image = file.filename.lower().endswith(IMAGE_SUFFIXES)
        method, field = ("sendPhoto", "photo") if is_image else ("sendDocument", "document")
        params = {k: str(v) for k, v in base.items()}
        return await self._call(chat_id, method, params, files={field: (file.filename, file.data)})

    async def _send_card(
        self, chat_id: str, thread_id: str | None, card: Card, selected: dict[str, str]
    ) -> str:
        base = {"chat_id": chat_id, **_thread_params(thread_id)}
        if not fits_callback_data(card) or not card.options:
            sent = await self._call(chat_id, "sendMessage", {**base, "text": card.fallback_text()})
            return str(sent["message_id"])
        keyboard = [
            [{"text": option.label[:64] or str(i + 1), "callback_data": button_data(card, i)}]
            for i, option in enumerate(card.options)
        ]
        text = f"{card.title}\n\n{card.question}" if card.title else card.question
        async with self._card_sending:
            sent = await self._call(
                chat_id,
                "sendMessage",
                {
                    **base,
                    "text": text[:MAX_TEXT_CHARS],
                    "reply_markup": {"inline_keyboard": keyboard},
                },
            )
            await self.blocking.run(
                self._cards.remember, chat_id, str(sent["message_id"]), card, selected
            )
        return str(sent["message_id"])

    async def set_typing(self, platform_id: str, thread_id: str | None, on: bool) -> None:
        if on:  # the action shows for about 5 s; the host refreshes it every 4 s
            with contextlib.suppress(TelegramApiError, TelegramFloodWaitError):
                await self.api.call(
                    "sendChatAction",
                    {"chat_id": platform_id, "action": "typing", **_thread_params(thread_id)},
                )

    async def open_dm(self, handle: str) -> str | None:
        """A Telegram user's private chat id is their user id."""
        return handle.split(":", 1)[1] if handle.startswith(f"{CHANNEL_TYPE}:") else handle
