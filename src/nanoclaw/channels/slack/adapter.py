"""The Slack adapter on slack-bolt: Socket Mode by default (no public URL), HTTP Events optional.

Inbound: ``message`` and ``app_mention`` events (a channel mention arrives as both; the
first one routes, keyed by ``(channel, ts)``), bot and edited messages ignored, files
downloaded with the bot token. Channel messages carry ``thread_id = thread_ts or ts`` so
each thread is its own session; DMs keep the user's thread only when they wrote in one.
Outbound: Markdown → mrkdwn split at ``MAX_TEXT_CHARS``, files via ``files_upload_v2``,
edits, reactions, Block Kit cards whose clicks go to ``ChannelSetup.on_action``, and a
"working" reaction on the user's message while a turn runs. 429s are retried by the SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections import OrderedDict
from typing import Any

import aiohttp
import httpx
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.app.async_server import AsyncSlackAppServer
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from nanoclaw.channels.base import (
    Attachment,
    Card,
    ChannelAdapter,
    ChannelSetup,
    InboundEvent,
    InboundMessage,
    OutboundPayload,
    split_text,
    user_id_of,
)
from nanoclaw.channels.cards import (
    Refusal,
    answered_text,
    button_data,
    card_of,
    parse_button_data,
)
from nanoclaw.channels.slack.mrkdwn import escape, to_mrkdwn
from nanoclaw.errors import ChannelError, DeliveryError
from nanoclaw.settings import Settings

log = logging.getLogger("nanoclaw.channels.slack")

CHANNEL_TYPE = "slack"
MAX_TEXT_CHARS = 3900  # Slack advises ≤ 4,000 characters per message
MAX_FILE_BYTES = 20 * 1024 * 1024
CONNECT_TIMEOUT_S = 30.0
DOWNLOAD_TIMEOUT_S = 60.0
RATE_LIMIT_RETRIES = 2
SEEN_EVENTS_MAX = 2000
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
        bot_token: str,
        app_token: str | None = None,
        signing_secret: str | None = None,
        mode: str = "socket",
        api_base_url: str = "https://slack.com/api/",
        http_host: str = "127.0.0.1",
        http_port: int = 3000,
        http_path: str = "/slack/events",
        http_client: httpx.AsyncClient | None = None,
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
        self.client = AsyncWebClient(token=bot_token, base_url=api_base_url)
        self.client.retry_handlers.append(
            AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES)
        )
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
        self._names: dict[str, str | None] = {}
        self._last_inbound: dict[tuple[str, str | None], str] = {}
        self._working: set[tuple[str, str]] = set()

    @classmethod
    def from_settings(cls, settings: Settings) -> SlackAdapter:
        assert settings.slack_bot_token is not None
        return cls(
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
        log.info("Slack connected as %s (%s mode)", self.bot_name, self.mode)

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
        if self._socket is not None:
            with contextlib.suppress(Exception):
                await self._socket.close_async()  # type: ignore[no-untyped-call]
            self._socket = None
        if self._web_runner is not None:
            with contextlib.suppress(Exception):
                await self._web_runner.cleanup()
            self._web_runner = None

    def is_connected(self) -> bool:
        if self._socket is not None:
            return self._connected and not self._socket.client.closed
        return self._connected

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
        text = str(event.get("text") or "")
        bot_tag = f"<@{self.bot_user_id}>" if self.bot_user_id else None
        is_mention = mention or is_dm or (bot_tag is not None and bot_tag in text)
        if bot_tag:
            text = text.replace(bot_tag, f"@{self.bot_name}" if self.bot_name else "").strip()
        thread_ts = event.get("thread_ts")
        thread_id = str(thread_ts) if thread_ts else (None if is_dm else ts)
        self._last_inbound[(channel, thread_id)] = ts
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
            ),
        )
        if self._setup is not None:
            await self._setup.on_inbound(inbound)

    def _first_time(self, channel: str, ts: str) -> bool:
        key = (channel, ts)
        if key in self._seen:
            return False
        self._seen[key] = None
        while len(self._seen) > SEEN_EVENTS_MAX:
            self._seen.popitem(last=False)
        return True

    async def _user_name(self, user: str) -> str | None:
        if user not in self._names:
            try:
                info = await self.client.users_info(user=user)
                profile = info["user"].get("profile") or {}
                self._names[user] = (
                    profile.get("display_name")
                    or info["user"].get("real_name")
                    or info["user"].get("name")
                )
            except Exception as exc:
                log.debug("users.info %s failed: %s", user, exc)
                self._names[user] = None
        return self._names[user]

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
        try:
            meta = json.loads(str(action.get("value") or ""))
        except ValueError:
            return
        parsed = parse_button_data(str(meta.get("d") or "")) if isinstance(meta, dict) else None
        if parsed is None or self._setup is None:
            return
        question_id = parsed[0]
        channel = str((body.get("channel") or {}).get("id") or "")
        ts = str((body.get("message") or {}).get("ts") or "")
        user = str((body.get("user") or {}).get("id") or "")
        answer = None
        if self._setup.on_action is not None:
            answer = await self._setup.on_action(
                question_id, str(meta.get("v") or ""), user_id_of(CHANNEL_TYPE, user)
            )
        if answer is None or isinstance(answer, Refusal):  # not taken: the buttons stay
            with contextlib.suppress(SlackApiError):
                await self.client.chat_postEphemeral(
                    channel=channel, user=user, text=answer or "Not accepted."
                )
            return
        card = Card(question_id, str(meta.get("t") or ""), "", ())
        done = answered_text(card, str(meta.get("l") or ""), answer)
        try:
            await self.client.chat_update(
                channel=channel,
                ts=ts,
                text=done,
                blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": escape(done)}}],
            )
        except SlackApiError as exc:
            log.warning("could not update the answered card: %s", exc.response.get("error"))

    # -- outbound ---------------------------------------------------------------------------------
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
        if operation == "edit":
            ts = str(content.get("messageId") or "")
            await self.client.chat_update(channel=platform_id, ts=ts, text=to_mrkdwn(payload.text))
            return ts
        if operation == "reaction":
            ts = str(content.get("messageId") or "")
            try:
                await self.client.reactions_add(
                    channel=platform_id,
                    timestamp=ts,
                    name=emoji_name(str(content.get("emoji") or "")),
                )
            except SlackApiError as exc:
                if exc.response.get("error") != "already_reacted":
                    raise
            return ts
        found = card_of(payload)
        if found is not None:
            return await self._send_card(platform_id, thread_id, *found)
        first: str | None = None
        if payload.text:
            for chunk in split_text(to_mrkdwn(payload.text), MAX_TEXT_CHARS):
                sent = await self.client.chat_postMessage(
                    channel=platform_id, text=chunk, thread_ts=thread_id, mrkdwn=True
                )
                first = first or str(sent["ts"])
        if payload.files:
            uploaded = await self.client.files_upload_v2(
                channel=platform_id,
                thread_ts=thread_id,
                file_uploads=[{"file": f.data, "filename": f.filename} for f in payload.files],
            )
            files = uploaded.get("files") or []
            first = first or (str(files[0].get("id")) if files else None)
        return first

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
                # Everything the click needs travels in the button (survives a host restart).
                "value": json.dumps(
                    {
                        "d": button_data(card, i),
                        "v": option.value,
                        "l": selected.get(option.value, option.label),
                        "t": card.title,
                    }
                )[:2000],
            }
            for i, option in enumerate(card.options)
        ]
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": head[:3000]}}
        ]
        for start in range(0, len(buttons), 25):  # an actions block holds at most 25 elements
            blocks.append({"type": "actions", "elements": buttons[start : start + 25]})
        sent = await self.client.chat_postMessage(
            channel=platform_id, thread_ts=thread_id, text=card.fallback_text(), blocks=blocks
        )
        return str(sent["ts"])

    async def set_typing(self, platform_id: str, thread_id: str | None, on: bool) -> None:
        """Bots cannot show "typing…" in Slack: a ⏳ reaction on the user's message instead."""
        ts = self._last_inbound.get((platform_id, thread_id))
        if ts is None:
            return
        key = (platform_id, ts)
        if on and key not in self._working:
            self._working.add(key)
            with contextlib.suppress(SlackApiError):
                await self.client.reactions_add(
                    channel=platform_id, timestamp=ts, name=WORKING_REACTION
                )
        elif not on and key in self._working:
            self._working.discard(key)
            with contextlib.suppress(SlackApiError):
                await self.client.reactions_remove(
                    channel=platform_id, timestamp=ts, name=WORKING_REACTION
                )

    async def open_dm(self, handle: str) -> str | None:
        user = handle.split(":", 1)[1] if handle.startswith(f"{CHANNEL_TYPE}:") else handle
        opened = await self.client.conversations_open(users=user)
        return str(opened["channel"]["id"])
