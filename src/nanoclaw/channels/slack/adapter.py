"""The Slack adapter on slack-bolt: Socket Mode by default (no public URL), HTTP Events optional.

Inbound: ``message`` and ``app_mention`` events (a channel mention arrives as both, and
Slack redelivers an unacknowledged event with ``retry_attempt``; the first one routes,
keyed by ``(channel, ts)``), bot and edited messages ignored, files downloaded with the
bot token. Text is unescaped into what a person reads, with user and channel references
resolved to names (``users.info`` / ``conversations.info``, cached; slack/text.py). A
thread reply carries its thread's parent as ``reply_to``. Channel messages carry
``thread_id = thread_ts or ts`` so each thread is its own session; DMs keep the user's
thread only when they wrote in one.
Outbound: Markdown → mrkdwn (escaped exactly once) split at ``MAX_TEXT_CHARS``, files via
``files_upload_v2``, edits, reactions, Block Kit cards whose buttons carry only a short id
(the options stay on the host in a ``CardMemory``), and a "working" reaction on the user's
message while a turn runs. Every call goes through the channel's ``OutboundScheduler``: a
429's ``Retry-After`` delays that channel only. The link state is watched: ``reconnecting``
while the socket is down and reconnects fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import httpx
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.app.async_server import AsyncSlackAppServer
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

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
    ReplyTo,
    split_text,
    user_id_of,
)
from nanoclaw.channels.card_memory import CardMemory
from nanoclaw.channels.cards import (
    Refusal,
    answered_text,
    button_data,
    card_of,
    parse_button_data,
)
from nanoclaw.channels.outbound import (
    OutboundScheduler,
    PartialSends,
    PlatformRateLimitError,
    RateLimits,
)
from nanoclaw.channels.slack.mrkdwn import escape, to_mrkdwn
from nanoclaw.channels.slack.text import to_readable
from nanoclaw.errors import ChannelError, DeliveryError
from nanoclaw.executors import BlockingExecutor
from nanoclaw.settings import Settings

log = logging.getLogger("nanoclaw.channels.slack")

CHANNEL_TYPE = "slack"
MAX_TEXT_CHARS = 3900  # Slack advises ≤ 4,000 characters per message
MAX_FILE_BYTES = 20 * 1024 * 1024
CONNECT_TIMEOUT_S = 30.0
DOWNLOAD_TIMEOUT_S = 60.0
SEEN_EVENTS_MAX = 2000
# Chats and threads whose latest user message is remembered (where a ⏳ goes). A top-level
# channel message is its own thread, so every such message is a new key: without a bound this
# grew by one entry per message for the life of the host.
LAST_INBOUND_KEPT = 2000
HEALTH_CHECK_INTERVAL_S = 1.0
CARD_MEMORY_FILE = "slack-cards.json"
# Slack's chat.postMessage allows about one message per second per channel (short bursts
# pass); the Web API's other tiers allow far more across the workspace.
SLACK_LIMITS = RateLimits(
    per_chat_per_s=1.0, per_chat_burst=3.0, channel_per_s=10.0, channel_burst=20.0
)
WORKING_REACTION = "hourglass_flowing_sand"
IGNORED_SUBTYPES_KEEP = frozenset({None, "file_share", "thread_broadcast"})
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "account_inactive",
        "message_not_found",
        "cant_update_message",
        "no_permission",
        "missing_scope",
        "invalid_name",
    }
)
EMOJI_NAMES = {
    "👍": "thumbsup",
    "👎": "thumbsdown",
    "❤️": "heart",
    "❤": "heart",
    "✅": "white_check_mark",
    "👀": "eyes",
    "🎉": "tada",
    "😂": "joy",
    "🔥": "fire",
    "🙏": "pray",
    "😀": "grinning",
    "❌": "x",
    "⏳": "hourglass_flowing_sand",
    "🤔": "thinking_face",
    "👌": "ok_hand",
    "💯": "100",
}
BUTTON_ACTION = re.compile(r"^ncq_\d+$")


def emoji_name(emoji: str) -> str:
    emoji = emoji.strip()
    return EMOJI_NAMES.get(emoji) or emoji.strip(":")


class SlackAdapter(ChannelAdapter):
    name = "slack"
    channel_type = CHANNEL_TYPE
    supports_threads = True
    supports_buttons = True
    max_text_length = MAX_TEXT_CHARS

    def __init__(
        self,
        *,
        blocking: BlockingExecutor,
        bot_token: str,
        app_token: str | None = None,
        signing_secret: str | None = None,
        mode: str = "socket",
        api_base_url: str = "https://slack.com/api/",
        http_host: str = "127.0.0.1",
        http_port: int = 3000,
        http_path: str = "/slack/events",
        http_client: httpx.AsyncClient | None = None,
        card_memory: CardMemory | None = None,
        outbound: OutboundScheduler | None = None,
    ) -> None:
        if mode not in ("socket", "http"):
            raise ChannelError(f"unknown Slack mode {mode!r}", channel=CHANNEL_TYPE)
        if mode == "socket" and not app_token:
            raise ChannelError(
                "Socket Mode needs an app-level token (xapp-…)", channel=CHANNEL_TYPE
            )
        self.mode = mode
        self._bot_token = bot_token
        self._app_token = app_token
        self.http_host, self.http_port, self.http_path = http_host, http_port, http_path
        # No SDK rate-limit retry handler: 429 waits belong to the outbound scheduler.
        self.client = AsyncWebClient(token=bot_token, base_url=api_base_url)
        self.outbound = outbound or OutboundScheduler(channel=CHANNEL_TYPE, limits=SLACK_LIMITS)
        self._cards = card_memory or CardMemory(path=None)
        self.blocking = blocking  # the card memory's file writes
        self._card_sending = asyncio.Lock()  # a click waits until its card is remembered
        self._lookups: dict[tuple[str, str], asyncio.Future[str | None]] = {}
        self._partial = PartialSends()
        self.app = AsyncApp(
            client=self.client,
            signing_secret=signing_secret or "",
            request_verification_enabled=mode == "http",
        )
        self.app.event("message")(self._on_message)
        self.app.event("app_mention")(self._on_app_mention)
        self.app.action(BUTTON_ACTION)(self._on_button)
        self._http = http_client or httpx.AsyncClient(timeout=DOWNLOAD_TIMEOUT_S)
        self._setup: ChannelSetup | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._web_runner: web.AppRunner | None = None
        self._connected = False
        self.bot_user_id: str | None = None
        self.bot_name: str | None = None
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._health = Health(LinkState.DISCONNECTED, "not started")
        self._watcher: asyncio.Task[None] | None = None
        self._last_inbound: OrderedDict[tuple[str, str | None], str] = OrderedDict()
        # (chat, thread) → the ts its ⏳ was put on: it comes off that message, even when a
        # newer one arrived meanwhile.
        self._working: dict[tuple[str, str | None], str] = {}

    @classmethod
    def from_settings(cls, settings: Settings, *, blocking: BlockingExecutor) -> SlackAdapter:
        assert settings.slack_bot_token is not None
        return cls(
            blocking=blocking,
            bot_token=settings.slack_bot_token.get_secret_value(),
            app_token=settings.slack_app_token.get_secret_value()
            if settings.slack_app_token
            else None,
            signing_secret=(
                settings.slack_signing_secret.get_secret_value()
                if settings.slack_signing_secret
                else None
            ),
            mode=settings.slack_mode,
            api_base_url=settings.slack_api_base_url,
            http_host=settings.slack_http_host,
            http_port=settings.slack_http_port,
            http_path=settings.slack_http_path,
            card_memory=CardMemory(path=settings.data_path / "channels" / CARD_MEMORY_FILE),
        )

    # -- lifecycle --------------------------------------------------------------------------------
    async def setup(self, setup: ChannelSetup) -> None:
        self._setup = setup
        try:
            auth = await self.client.auth_test()
        except SlackApiError as exc:
            raise ChannelError(
                f"auth.test failed: {exc.response.get('error')}", channel=CHANNEL_TYPE
            ) from exc
        self.bot_user_id = str(auth.get("user_id") or "")
        self.bot_name = str(auth.get("user") or "")
        if self.mode == "socket":
            await self._connect_socket()
        else:
            await self._serve_http()
        self._connected = True
        self._health = Health(LinkState.CONNECTED, f"{self.mode} mode")
        if self._socket is not None:
            self._watcher = asyncio.ensure_future(self._watch_socket(self._socket))
        log.info("Slack connected as %s (%s mode)", self.bot_name, self.mode)

    async def _watch_socket(self, handler: AsyncSocketModeHandler) -> None:
        """The socket's real state: the SDK reconnects by itself, this says whether it can."""
        down_since: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            up = await handler.client.is_connected()  # type: ignore[no-untyped-call]
            if up:
                if down_since is not None:
                    log.info("Slack Socket Mode reconnected")
                down_since = None
                self._health = Health(LinkState.CONNECTED, "socket mode")
            else:
                down_since = down_since if down_since is not None else loop.time()
                self._health = Health(
                    LinkState.RECONNECTING,
                    f"socket down for {loop.time() - down_since:.0f} s; reconnecting",
                )
            await asyncio.sleep(HEALTH_CHECK_INTERVAL_S)

    async def _connect_socket(self) -> None:
        assert self._app_token is not None
        try:  # checks the app token; the URL is handed to the handler so it is not fetched twice
            opened = await self.client.apps_connections_open(app_token=self._app_token)
        except SlackApiError as exc:
            raise ChannelError(
                f"apps.connections.open failed: {exc.response.get('error')}", channel=CHANNEL_TYPE
            ) from exc
        handler = AsyncSocketModeHandler(self.app, self._app_token)
        handler.client.wss_uri = str(opened["url"])
        self._socket = handler
        try:
            await asyncio.wait_for(handler.connect_async(), timeout=CONNECT_TIMEOUT_S)  # type: ignore[no-untyped-call]
        except TimeoutError as exc:
            raise ChannelError("Socket Mode connection timed out", channel=CHANNEL_TYPE) from exc

    async def _serve_http(self) -> None:
        server = AsyncSlackAppServer(
            port=self.http_port, path=self.http_path, app=self.app, host=self.http_host
        )
        runner = web.AppRunner(server.web_app)
        await runner.setup()
        site = web.TCPSite(runner, self.http_host, self.http_port)
        await site.start()
        self._web_runner = runner

    @property
    def http_url(self) -> str | None:
        """Where HTTP Events mode listens (the bound port when ``http_port`` was 0)."""
        if self._web_runner is None or not self._web_runner.addresses:
            return None
        host, port = self._web_runner.addresses[0][:2]
        return f"http://{host}:{port}{self.http_path}"

    async def teardown(self) -> None:
        self._connected = False
        self._health = Health(LinkState.DISCONNECTED, "stopped")
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watcher
            self._watcher = None
        if self._socket is not None:
            with contextlib.suppress(Exception):
                await self._socket.close_async()  # type: ignore[no-untyped-call]
            self._socket = None
        if self._web_runner is not None:
            with contextlib.suppress(Exception):
                await self._web_runner.cleanup()
            self._web_runner = None

    def is_connected(self) -> bool:
        return self.health().state == LinkState.CONNECTED

    def health(self) -> Health:
        if not self._connected:
            return Health(LinkState.DISCONNECTED, self._health.detail)
        if self._socket is not None and self._socket.client.closed:
            return Health(LinkState.DISCONNECTED, "socket closed")
        return self._health

    # -- inbound ----------------------------------------------------------------------------------
    async def _on_message(self, event: dict[str, Any]) -> None:
        await self._inbound(event, mention=False)

    async def _on_app_mention(self, event: dict[str, Any]) -> None:
        await self._inbound(event, mention=True)

    async def _inbound(self, event: dict[str, Any], *, mention: bool) -> None:
        if event.get("subtype") not in IGNORED_SUBTYPES_KEEP:
            return  # edits (message_changed), deletions, joins, bot_message …
        user = event.get("user")
        if event.get("bot_id") or not user or user == self.bot_user_id:
            return
        channel, ts = str(event.get("channel") or ""), str(event.get("ts") or "")
        if not channel or not ts or not self._first_time(channel, ts):
            return
        is_dm = event.get("channel_type") == "im" or channel.startswith("D")
        raw = str(event.get("text") or "")
        bot_tag = f"<@{self.bot_user_id}" if self.bot_user_id else None  # <@U…> or <@U…|name>
        is_mention = mention or is_dm or (bot_tag is not None and bot_tag in raw)
        text = (
            await to_readable(raw, users=self._mention_name, channels=self._channel_name)
        ).strip()
        thread_ts = event.get("thread_ts")
        thread_id = str(thread_ts) if thread_ts else (None if is_dm else ts)
        self._last_inbound[(channel, thread_id)] = ts
        self._last_inbound.move_to_end((channel, thread_id))
        while len(self._last_inbound) > LAST_INBOUND_KEPT:
            self._last_inbound.popitem(last=False)
        attachments = await self._download_files(event.get("files") or [])
        inbound = InboundEvent(
            channel_type=CHANNEL_TYPE,
            platform_id=channel,
            thread_id=thread_id,
            message=InboundMessage(
                id=ts,
                text=text,
                sender=str(user),
                sender_name=await self._user_name(str(user)),
                is_mention=is_mention,
                is_group=not is_dm,
                attachments=tuple(attachments),
                reply_to=await self._reply_of(event),
            ),
        )
        if self._setup is not None:
            await self._setup.on_inbound(inbound)

    async def _reply_of(self, event: dict[str, Any]) -> ReplyTo | None:
        """A thread reply replies to its thread's parent (text only when Slack includes it)."""
        thread_ts, ts = event.get("thread_ts"), event.get("ts")
        if not thread_ts or thread_ts == ts:
            return None
        root = event.get("root") or {}  # thread_broadcast carries the parent
        parent_user = root.get("user") or event.get("parent_user_id")
        text = None
        if root.get("text"):
            text = await to_readable(
                str(root["text"]), users=self._mention_name, channels=self._channel_name
            )
        sender = await self._user_name(str(parent_user)) if parent_user else None
        return ReplyTo(id=str(thread_ts), text=text, sender=sender or parent_user)

    async def _mention_name(self, user: str) -> str | None:
        if user == self.bot_user_id and self.bot_name:
            return self.bot_name
        return await self._user_name(user)

    async def _channel_name(self, channel: str) -> str | None:
        async def lookup() -> str | None:
            info = await self.client.conversations_info(channel=channel)
            name = (info.get("channel") or {}).get("name")
            return str(name) if name else None

        return await self._cached("conversations.info", channel, lookup)

    def _first_time(self, channel: str, ts: str) -> bool:
        key = (channel, ts)
        if key in self._seen:
            return False
        self._seen[key] = None
        while len(self._seen) > SEEN_EVENTS_MAX:
            self._seen.popitem(last=False)
        return True

    async def _cached(
        self, kind: str, key: str, lookup: Callable[[], Awaitable[str | None]]
    ) -> str | None:
        """One lookup per name, shared by concurrent events; a failure is cached as None."""
        found = self._lookups.get((kind, key))
        if found is None:
            found = asyncio.ensure_future(self._lookup_or_none(kind, key, lookup))
            self._lookups[(kind, key)] = found
        return await asyncio.shield(found)

    @staticmethod
    async def _lookup_or_none(
        kind: str, key: str, lookup: Callable[[], Awaitable[str | None]]
    ) -> str | None:
        try:
            return await lookup()
        except Exception as exc:
            log.debug("%s %s failed: %s", kind, key, exc)
            return None

    async def _user_name(self, user: str) -> str | None:
        async def lookup() -> str | None:
            info = await self.client.users_info(user=user)
            profile = info["user"].get("profile") or {}
            name = (
                profile.get("display_name")
                or info["user"].get("real_name")
                or info["user"].get("name")
            )
            return str(name) if name else None

        return await self._cached("users.info", user, lookup)

    async def _download_files(self, files: list[dict[str, Any]]) -> list[Attachment]:
        found: list[Attachment] = []
        for f in files:
            name = str(f.get("name") or f.get("id") or "file")
            mime = f.get("mimetype")
            url = f.get("url_private_download") or f.get("url_private")
            if not url or int(f.get("size") or 0) > MAX_FILE_BYTES:
                found.append(Attachment(name=name, mime=mime, url=url))
                continue
            try:
                response = await self._http.get(
                    str(url), headers={"Authorization": f"Bearer {self._bot_token}"}
                )
                response.raise_for_status()
                found.append(
                    Attachment(name=name, mime=mime, data=response.content[:MAX_FILE_BYTES])
                )
            except httpx.HTTPError as exc:
                log.warning("Slack file %s could not be downloaded: %s", name, exc)
                found.append(Attachment(name=name, mime=mime, url=str(url)))
        return found

    async def _on_button(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()  # within Slack's 3-second budget, before any slow work
        parsed = parse_button_data(str(action.get("value") or ""))
        if parsed is None or self._setup is None:
            return
        question_id, index = parsed
        channel = str((body.get("channel") or {}).get("id") or "")
        container = body.get("container") or {}
        ts = str((body.get("message") or {}).get("ts") or container.get("message_ts") or "")
        user = str((body.get("user") or {}).get("id") or "")
        async with self._card_sending:
            known = self._cards.recall(channel, ts)
        if known is None or index >= len(known[0].options) or known[0].question_id != question_id:
            with contextlib.suppress(SlackApiError):
                await self.client.chat_postEphemeral(
                    channel=channel, user=user, text="This card is no longer open."
                )
            return
        card, selected = known
        option = card.options[index]
        answer = None
        if self._setup.on_action is not None:
            answer = await self._setup.on_action(
                question_id, option.value, user_id_of(CHANNEL_TYPE, user)
            )
        if answer is None or isinstance(answer, Refusal):  # not taken: the buttons stay
            with contextlib.suppress(SlackApiError):
                await self.client.chat_postEphemeral(
                    channel=channel, user=user, text=answer or "Not accepted."
                )
            return
        done = answered_text(card, selected.get(option.value, option.label), answer)
        try:
            await self.client.chat_update(
                channel=channel,
                ts=ts,
                text=done,
                blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": escape(done)}}],
            )
        except SlackApiError as exc:
            log.warning("could not update the answered card: %s", exc.response.get("error"))
        await self.blocking.run(self._cards.forget, channel, ts)

    # -- outbound ---------------------------------------------------------------------------------
    async def _call(self, channel: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """One Web API call into a channel, through the scheduler (429 → its Retry-After)."""

        async def once() -> Any:
            try:
                return await call()
            except SlackApiError as exc:
                if exc.response.status_code != 429:
                    raise
                retry_after = float(exc.response.headers.get("Retry-After", "1") or 1)
                raise PlatformRateLimitError(
                    "Slack: ratelimited", channel=CHANNEL_TYPE, retry_after_s=retry_after
                ) from None

        return await self.outbound.send(channel, once)

    async def deliver(
        self, platform_id: str, thread_id: str | None, payload: OutboundPayload
    ) -> str | None:
        try:
            return await self._deliver(platform_id, thread_id, payload)
        except SlackApiError as exc:
            error = str(exc.response.get("error") or exc)
            raise DeliveryError(
                f"Slack refused the message: {error}", retryable=error not in PERMANENT_ERRORS
            ) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise DeliveryError(f"Slack unreachable: {exc}") from exc

    async def _deliver(
        self, platform_id: str, thread_id: str | None, payload: OutboundPayload
    ) -> str | None:
        content = payload.content
        operation = content.get("operation")
        target = str(content.get("messageId") or content.get("message_id") or "")
        if operation == "edit":
            await self._call(
                platform_id,
                lambda: self.client.chat_update(
                    channel=platform_id, ts=target, text=to_mrkdwn(payload.text)
                ),
            )
            return target
        if operation == "reaction":
            try:
                await self._call(
                    platform_id,
                    lambda: self.client.reactions_add(
                        channel=platform_id,
                        timestamp=target,
                        name=emoji_name(str(content.get("emoji") or "")),
                    ),
                )
            except SlackApiError as exc:
                if exc.response.get("error") != "already_reacted":
                    raise
            return target
        found = card_of(payload)
        if found is not None:
            return await self._send_card(platform_id, thread_id, *found)
        # Parts already sent survive a deferred retry (outbound.PartialSends): none goes twice.
        key = PartialSends.key(
            platform_id,
            thread_id,
            payload.text,
            *(f.filename for f in payload.files),
            *(f.data for f in payload.files),
        )
        sent_ids = self._partial.sent(key)
        chunks = split_text(to_mrkdwn(payload.text), MAX_TEXT_CHARS) if payload.text else []
        for index, chunk in enumerate(chunks):
            if index < len(sent_ids):
                continue
            sent = await self._call(
                platform_id,
                lambda chunk=chunk: self.client.chat_postMessage(  # type: ignore[misc]
                    channel=platform_id, text=chunk, thread_ts=thread_id, mrkdwn=True
                ),
            )
            sent_ids.append(str(sent["ts"]))
        if payload.files and len(sent_ids) <= len(chunks):
            uploaded = await self._call(
                platform_id,
                lambda: self.client.files_upload_v2(
                    channel=platform_id,
                    thread_ts=thread_id,
                    file_uploads=[{"file": f.data, "filename": f.filename} for f in payload.files],
                ),
            )
            files = uploaded.get("files") or []
            sent_ids.append(str(files[0].get("id")) if files else "")
        self._partial.done(key)
        return next((i for i in sent_ids if i), None)

    async def _send_card(
        self, platform_id: str, thread_id: str | None, card: Card, selected: dict[str, str]
    ) -> str:
        head = (
            f"*{escape(card.title)}*\n{escape(card.question)}"
            if card.title
            else escape(card.question)
        )
        buttons = [
            {
                "type": "button",
                "action_id": f"ncq_{i}",
                "text": {"type": "plain_text", "text": option.label[:75] or str(i + 1)},
                # Only a short id travels: the options stay on the host (CardMemory).
                "value": button_data(card, i),
            }
            for i, option in enumerate(card.options)
        ]
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": head[:3000]}}
        ]
        for start in range(0, len(buttons), 25):  # an actions block holds at most 25 elements
            blocks.append({"type": "actions", "elements": buttons[start : start + 25]})
        async with self._card_sending:
            sent = await self._call(
                platform_id,
                lambda: self.client.chat_postMessage(
                    channel=platform_id,
                    thread_ts=thread_id,
                    text=card.fallback_text(),
                    blocks=blocks,
                ),
            )
            await self.blocking.run(
                self._cards.remember, platform_id, str(sent["ts"]), card, selected
            )
        return str(sent["ts"])

    async def set_typing(self, platform_id: str, thread_id: str | None, on: bool) -> None:
        """Bots cannot show "typing…" in Slack: a ⏳ reaction on the user's message instead."""
        key = (platform_id, thread_id)
        if on:
            ts = self._last_inbound.get(key)
            if ts is None or key in self._working:
                return
            self._working[key] = ts
            with contextlib.suppress(SlackApiError):
                await self.client.reactions_add(
                    channel=platform_id, timestamp=ts, name=WORKING_REACTION
                )
            return
        put_on = self._working.pop(key, None)
        if put_on is not None:
            with contextlib.suppress(SlackApiError):
                await self.client.reactions_remove(
                    channel=platform_id, timestamp=put_on, name=WORKING_REACTION
                )

    async def open_dm(self, handle: str) -> str | None:
        user = handle.split(":", 1)[1] if handle.startswith(f"{CHANNEL_TYPE}:") else handle
        opened = await self.client.conversations_open(users=user)
        return str(opened["channel"]["id"])
