"""The Telegram adapter: Bot API long polling (no public URL), private chats and groups.

In groups a message engages when it mentions the bot (``@username``, a text mention or a
``/command@bot``) or replies to one of the bot's messages. Photos and documents are
downloaded through ``getFile``. Replies are Markdown → HTML split at 4,096 characters;
a 400 parse error resends the chunk as plain text, so formatting can never break a send.
Cards are inline keyboards whose callback data (``ncq:<qid>:<i>``) fits in 64 bytes; the
option values live in a ``CardMemory`` file, so buttons keep working across restarts.
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
    InboundEvent,
    InboundMessage,
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
from nanoclaw.channels.telegram.api import TelegramApi, TelegramApiError
from nanoclaw.channels.telegram.html import to_html
from nanoclaw.errors import DeliveryError
from nanoclaw.settings import Settings

log = logging.getLogger("nanoclaw.channels.telegram")

CHANNEL_TYPE = "telegram"
MAX_TEXT_CHARS = 4096
MARKUP_HEADROOM_CHARS = 596  # split the Markdown smaller, so its HTML still fits
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024  # the Bot API's getFile limit
POLL_ERROR_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp")
EMOJI_BY_NAME = {
    "thumbsup": "👍",
    "+1": "👍",
    "thumbsdown": "👎",
    "-1": "👎",
    "heart": "❤",
    "fire": "🔥",
    "eyes": "👀",
    "tada": "🎉",
    "pray": "🙏",
    "ok_hand": "👌",
    "100": "💯",
    "joy": "😂",
    "white_check_mark": "👍",
    "thinking_face": "🤔",
}
PERMANENT_CODES = frozenset({400, 401, 403, 404})
CARD_MEMORY_FILE = "telegram-cards.json"


def reaction_emoji(emoji: str) -> str:
    name = emoji.strip().strip(":")
    return EMOJI_BY_NAME.get(name, emoji.strip())


class TelegramAdapter(ChannelAdapter):
    name = "telegram"
    channel_type = CHANNEL_TYPE
    supports_threads = False
    supports_buttons = True
    max_text_length = MAX_TEXT_CHARS

    def __init__(
        self,
        *,
        bot_token: str,
        api_base_url: str = "https://api.telegram.org",
        poll_timeout_s: int = 30,
        http_client: httpx.AsyncClient | None = None,
        card_memory: CardMemory | None = None,
    ) -> None:
        self.api = TelegramApi(token=bot_token, base_url=api_base_url, client=http_client)
        self.poll_timeout_s = poll_timeout_s
        self._setup: ChannelSetup | None = None
        self._poller: asyncio.Task[None] | None = None
        self._polling_ok = False
        self.bot_id: int | None = None
        self.username: str | None = None
        self._offset: int | None = None
        self._cards = card_memory or CardMemory(path=None)

    @classmethod
    def from_settings(cls, settings: Settings) -> TelegramAdapter:
        assert settings.telegram_bot_token is not None
        return cls(
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
        self._polling_ok = True
        self._poller = asyncio.ensure_future(self._poll())
        self._poller.set_name("telegram-poll")
        log.info("Telegram connected as @%s (long polling)", self.username)

    async def teardown(self) -> None:
        self._polling_ok = False
        if self._poller is not None:
            await cancel_and_wait(self._poller)
            self._poller = None

    def is_connected(self) -> bool:
        return self._poller is not None and not self._poller.done() and self._polling_ok

    async def _poll(self) -> None:
        failures = 0
        while True:
            try:
                updates = await self.api.call(
                    "getUpdates",
                    {
                        "offset": self._offset,
                        "timeout": self.poll_timeout_s,
                        "allowed_updates": ["message", "callback_query"],
                    },
                    timeout_s=self.poll_timeout_s + 10.0,
                )
            except TelegramApiError as exc:
                self._polling_ok = False
                delay = POLL_ERROR_BACKOFF_S[min(failures, len(POLL_ERROR_BACKOFF_S) - 1)]
                failures += 1
                log.warning("Telegram getUpdates failed (%s); retrying in %ss", exc, delay)
                await asyncio.sleep(delay)
                continue
            failures = 0
            self._polling_ok = True
            for update in updates or []:
                self._offset = int(update["update_id"]) + 1
                try:
                    await self._handle(update)
                except Exception:
                    log.exception("Telegram update %s failed", update.get("update_id"))

    # -- inbound ----------------------------------------------------------------------------------
    async def _handle(self, update: dict[str, Any]) -> None:
        if "callback_query" in update:
            await self._on_callback(update["callback_query"])
        elif "message" in update:  # edited_message is not requested: edits are ignored
            await self._on_message(update["message"])

    def _mentions_me(self, msg: dict[str, Any], text: str) -> bool:
        reply = msg.get("reply_to_message") or {}
        if self.bot_id is not None and (reply.get("from") or {}).get("id") == self.bot_id:
            return True
        if self.username and f"@{self.username}".lower() in text.lower():
            return True
        for entity in msg.get("entities") or msg.get("caption_entities") or []:
            if (
                entity.get("type") == "text_mention"
                and (entity.get("user") or {}).get("id") == self.bot_id
            ):
                return True
        return False

    async def _on_message(self, msg: dict[str, Any]) -> None:
        sender = msg.get("from") or {}
        if sender.get("is_bot") or "id" not in sender:
            return
        chat = msg.get("chat") or {}
        is_group = chat.get("type") != "private"
        text = str(msg.get("text") or msg.get("caption") or "")
        is_mention = (not is_group) or self._mentions_me(msg, text)
        name = " ".join(p for p in (sender.get("first_name"), sender.get("last_name")) if p)
        event = InboundEvent(
            channel_type=CHANNEL_TYPE,
            platform_id=str(chat.get("id")),
            thread_id=None,
            message=InboundMessage(
                id=str(msg.get("message_id")),
                text=text,
                sender=str(sender["id"]),
                sender_name=name or sender.get("username"),
                is_mention=is_mention,
                is_group=is_group,
                attachments=tuple(await self._attachments(msg)),
            ),
        )
        if self._setup is not None:
            await self._setup.on_inbound(event)

    async def _attachments(self, msg: dict[str, Any]) -> list[Attachment]:
        wanted: list[tuple[dict[str, Any], str, str | None]] = []
        if msg.get("photo"):
            largest = max(
                msg["photo"], key=lambda p: int(p.get("file_size") or 0) or p.get("width", 0)
            )
            wanted.append((largest, f"photo-{msg.get('message_id')}.jpg", "image/jpeg"))
        if msg.get("document"):
            doc = msg["document"]
            wanted.append((doc, str(doc.get("file_name") or "document"), doc.get("mime_type")))
        found: list[Attachment] = []
        for item, name, mime in wanted:
            if int(item.get("file_size") or 0) > MAX_DOWNLOAD_BYTES:
                found.append(Attachment(name=name, mime=mime))
                continue
            try:
                info = await self.api.call("getFile", {"file_id": item["file_id"]})
                data = await self.api.download(str(info["file_path"]))
                found.append(Attachment(name=name, mime=mime, data=data))
            except TelegramApiError as exc:
                log.warning("Telegram file %s could not be downloaded: %s", name, exc)
                found.append(Attachment(name=name, mime=mime))
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
        with contextlib.suppress(TelegramApiError):
            await self.api.call(
                "answerCallbackQuery",
                {"callback_query_id": query.get("id"), "text": (answer or "Not accepted.")[:200]},
            )
        if answer is not None and not isinstance(answer, Refusal) and message_id:
            done = answered_text(Card("", title, "", ()), label, answer)
            with contextlib.suppress(TelegramApiError):  # no reply_markup: the buttons go away
                await self.api.call(
                    "editMessageText", {"chat_id": chat_id, "message_id": message_id, "text": done}
                )
            await asyncio.to_thread(self._cards.forget, chat_id, str(message_id))

    # -- outbound ---------------------------------------------------------------------------------
    async def deliver(
        self, platform_id: str, thread_id: str | None, payload: OutboundPayload
    ) -> str | None:
        try:
            return await self._deliver(platform_id, payload)
        except TelegramApiError as exc:
            raise DeliveryError(
                str(exc), retryable=exc.code is None or exc.code not in PERMANENT_CODES
            ) from None

    async def _deliver(self, chat_id: str, payload: OutboundPayload) -> str | None:
        content = payload.content
        operation = content.get("operation")
        if operation == "edit":
            message_id = int(str(content.get("messageId")))
            await self._send_text(
                "editMessageText", {"chat_id": chat_id, "message_id": message_id}, payload.text
            )
            return str(message_id)
        if operation == "reaction":
            message_id = int(str(content.get("messageId")))
            await self.api.call(
                "setMessageReaction",
                {
                    "chat_id": chat_id,
                    "message_id": message_id,
                    "reaction": [
                        {"type": "emoji", "emoji": reaction_emoji(str(content.get("emoji") or ""))}
                    ],
                },
            )
            return str(message_id)
        found = card_of(payload)
        if found is not None:
            return await self._send_card(chat_id, *found)
        first: str | None = None
        if payload.text:
            for chunk in split_text(payload.text, MAX_TEXT_CHARS - MARKUP_HEADROOM_CHARS):
                sent = await self._send_text("sendMessage", {"chat_id": chat_id}, chunk)
                first = first or str(sent["message_id"])
        for file in payload.files:
            sent = await self._send_file(chat_id, file)
            first = first or str(sent["message_id"])
        return first

    async def _send_text(self, method: str, params: dict[str, Any], markdown: str) -> Any:
        """HTML when it fits and parses; plain text otherwise (formatting never breaks a send)."""
        rendered = to_html(markdown)
        if len(rendered) <= MAX_TEXT_CHARS:
            try:
                return await self.api.call(
                    method, {**params, "text": rendered, "parse_mode": "HTML"}
                )
            except TelegramApiError as exc:
                if exc.code != 400 or "parse" not in exc.description.lower():
                    raise
                log.info("Telegram rejected the HTML (%s); sending plain text", exc.description)
        return await self.api.call(method, {**params, "text": markdown[:MAX_TEXT_CHARS]})

    async def _send_file(self, chat_id: str, file: OutboundFile) -> Any:
        is_image = file.filename.lower().endswith(IMAGE_SUFFIXES)
        method, field = ("sendPhoto", "photo") if is_image else ("sendDocument", "document")
        return await self.api.call(
            method, {"chat_id": chat_id}, files={field: (file.filename, file.data)}
        )

    async def _send_card(self, chat_id: str, card: Card, selected: dict[str, str]) -> str:
        if not fits_callback_data(card) or not card.options:
            sent = await self.api.call(
                "sendMessage", {"chat_id": chat_id, "text": card.fallback_text()}
            )
            return str(sent["message_id"])
        keyboard = [
            [{"text": option.label[:64] or str(i + 1), "callback_data": button_data(card, i)}]
            for i, option in enumerate(card.options)
        ]
        text = f"{card.title}\n\n{card.question}" if card.title else card.question
        sent = await self.api.call(
            "sendMessage",
            {
                "chat_id": chat_id,
                "text": text[:MAX_TEXT_CHARS],
                "reply_markup": {"inline_keyboard": keyboard},
            },
        )
        await asyncio.to_thread(
            self._cards.remember, chat_id, str(sent["message_id"]), card, selected
        )
        return str(sent["message_id"])

    async def set_typing(self, platform_id: str, thread_id: str | None, on: bool) -> None:
        if on:  # the action shows for about 5 s; the host refreshes it every 4 s
            with contextlib.suppress(TelegramApiError):
                await self.api.call("sendChatAction", {"chat_id": platform_id, "action": "typing"})

    async def open_dm(self, handle: str) -> str | None:
        """A Telegram user's private chat id is their user id."""
        return handle.split(":", 1)[1] if handle.startswith(f"{CHANNEL_TYPE}:") else handle
