"""A fake Telegram Bot API: long-polled getUpdates, the send/edit/react/callback methods, getFile
and file downloads, multipart uploads. Every call is recorded; failures can be injected.

Every payload is built from a fixture in ``tests/fixtures/telegram/`` (the Bot API object
definitions) with only ids and text substituted. The fake models the platform's limits:
message ids are unique per chat (each chat counts its own), flood control answers 429 with
the seconds left (``flood``), a webhook left set makes getUpdates answer 409 until
deleteWebhook (``webhook_url``), a second poller answers 409 (``other_poller``), a group
upgraded to a supergroup refuses sends with ``migrate_to_chat_id`` (``migrated``), and
reactions outside ReactionTypeEmoji's list answer 400 REACTION_INVALID. Like the real
server, it computes ``mention`` and ``bot_command`` entities from the text it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.call_log import CallLog
from tests.fakes.fixtures import fixture

BOT_ID = 999
BOT_USERNAME = "andy_bot"
SENDS = frozenset(
    {"sendMessage", "sendPhoto", "sendDocument", "editMessageText", "setMessageReaction"}
)
_MENTION = re.compile(r"(?<![\w@])@[A-Za-z][A-Za-z0-9_]{3,31}")
_COMMAND = re.compile(r"^/[A-Za-z0-9_]{1,32}(?:@[A-Za-z][A-Za-z0-9_]{3,31})?")


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def entities_of(text: str) -> list[dict[str, Any]]:
    """The ``mention`` and ``bot_command`` entities the Bot API server would attach."""
    found: list[dict[str, Any]] = []
    for pattern, name in ((_COMMAND, "entity_bot_command"), (_MENTION, "entity_mention")):
        for match in pattern.finditer(text):
            entity = fixture("telegram", name)
            entity["offset"] = utf16_len(text[: match.start()])
            entity["length"] = utf16_len(match.group(0))
            found.append(entity)
    return sorted(found, key=lambda e: int(e["offset"]))


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    result: Any = None  # what the fake answered (e.g. the sent message, with its message_id)


@dataclass
class FakeTelegram(CallLog):
    token: str = "123456:TEST-token"
    calls: list[Call] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)  # file_id → bytes
    fail_get_me: int = 0  # answer getMe with a 502 this many times
    reject_html: bool = False  # answer parse_mode=HTML sends with a 400 parse error
    webhook_url: str = ""  # a webhook left set: getUpdates answers 409 until deleteWebhook
    other_poller: bool = False  # another instance polls this token: getUpdates answers 409
    migrated: dict[int, int] = field(default_factory=dict)  # old group id → supergroup id
    url: str = ""

    def __post_init__(self) -> None:
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._flood_until: dict[int, float] = {}
        self._allowed = frozenset(fixture("telegram", "reaction_type_emoji")["allowed"])
        self._new_update = asyncio.Condition()
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.polls = 0  # getUpdates calls answered
        self.conflicts = 0  # getUpdates calls answered 409

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- platform limits ----------------------------------------------------------------------
    def next_message_id(self, chat_id: int) -> int:
        """Message ids count per chat, as in Telegram (two chats reuse the same ids)."""
        return next(self._message_ids.setdefault(chat_id, itertools.count(1)))

    def flood(self, chat_id: int, seconds: float) -> None:
        """Flood control: sends to ``chat_id`` answer 429 for ``seconds`` from now."""
        self._flood_until[chat_id] = time.monotonic() + seconds

    # -- injecting updates ------------------------------------------------------------------------
    async def push(self, update: dict[str, Any]) -> int:
        update_id = next(self._update_ids)
        async with self._new_update:
            self._updates.append({"update_id": update_id, **update})
            self._new_update.notify_all()
        return update_id

    def _address(
        self,
        msg: dict[str, Any],
        *,
        chat_id: int,
        user_id: int,
        chat_type: str,
        first_name: str,
        thread: int | None,
    ) -> dict[str, Any]:
        msg["message_id"] = self.next_message_id(chat_id)
        chat = msg["chat"]
        chat["id"], chat["type"] = chat_id, chat_type
        if chat_type == "private":
            chat.pop("title", None)
        else:
            for key in ("first_name", "last_name", "username"):
                chat.pop(key, None)
            chat.setdefault("title", "Team")
        if "from" in msg and not msg["from"].get("is_bot"):
            msg["from"]["id"], msg["from"]["first_name"] = user_id, first_name
            msg["from"].pop("last_name", None)
            msg["from"].pop("username", None)
        if thread is not None:  # a forum topic: thread id and the topic's creation message
            chat["is_forum"] = True
            root = fixture("telegram", "service_forum_topic_created")
            root["message_id"] = root["message_thread_id"] = thread
            root["chat"] = dict(chat)
            msg.update(message_thread_id=thread, is_topic_message=True)
            msg.setdefault("reply_to_message", root)
        return msg

    def message(
        self,
        text: str | None,
        *,
        chat_id: int = 42,
        user_id: int = 42,
        chat_type: str = "private",
        first_name: str = "Alice",
        thread: int | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """A user's message (fixture ``message_text``), entities computed as the server would."""
        msg = self._address(
            fixture("telegram", "message_text"),
            chat_id=chat_id,
            user_id=user_id,
            chat_type=chat_type,
            first_name=first_name,
            thread=thread,
        )
        del msg["text"]
        if text is not None:
            msg["text"] = text
            if entities := entities_of(text):
                msg["entities"] = entities
        caption = extra.get("caption")
        wants_entities = isinstance(caption, str) and "caption_entities" not in extra
        if wants_entities and (entities := entities_of(str(caption))):
            msg["caption_entities"] = entities
        msg.update(extra)
        return msg

    def from_fixture(
        self,
        name: str,
        *,
        chat_id: int = 42,
        user_id: int = 42,
        chat_type: str = "private",
        first_name: str = "Alice",
        thread: int | None = None,
        caption: str | None = None,
        text: str | None = None,
        data: bytes | None = None,
    ) -> dict[str, Any]:
        """A media, service or other message fixture with ids substituted; ``data`` is served
        for every file id it carries."""
        msg = self._address(
            fixture("telegram", name),
            chat_id=chat_id,
            user_id=user_id,
            chat_type=chat_type,
            first_name=first_name,
            thread=thread,
        )
        if caption is not None:
            msg["caption"] = caption
            msg.pop("caption_entities", None)
            if entities := entities_of(caption):
                msg["caption_entities"] = entities
        if text is not None:
            msg["text"] = text
            msg.pop("entities", None)
            if entities := entities_of(text):
                msg["entities"] = entities
        if data is not None:
            for key in (
                "voice",
                "audio",
                "video",
                "video_note",
                "animation",
                "sticker",
                "document",
            ):
                if key in msg:
                    self.files[msg[key]["file_id"]] = data
            for size in msg.get("photo") or []:
                self.files[size["file_id"]] = data
        return msg

    # -- server ---------------------------------------------------------------------------------
    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        files: dict[str, tuple[str, bytes]] = {}
        if request.content_type == "application/json":
            params = await request.json()
        else:
            params = {}
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    files[key] = (value.filename, value.file.read())
                else:
                    params[key] = value
        call = Call(method, params, files)
        if method != "getUpdates":
            self.calls.append(call)
            self._changed.set()
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        if method == "getMe" and self.fail_get_me > 0:
            self.fail_get_me -= 1
            return web.json_response(
                {"ok": False, "error_code": 502, "description": "Bad Gateway"}, status=502
            )
        if method == "getUpdates":
            self.polls += 1
            self._changed.set()
            if self.webhook_url or self.other_poller:
                self.conflicts += 1
                name = "error_webhook_conflict" if self.webhook_url else "error_poller_conflict"
                return _error(name)
            return web.json_response({"ok": True, "result": await self._get_updates(params)})
        refusal = self._refusal(method, params)
        if refusal is not None:
            return refusal
        call.result = self._answer(method, params, files)
        return web.json_response({"ok": True, "result": call.result})

    def _refusal(self, method: str, params: dict[str, Any]) -> web.Response | None:
        if method not in SENDS:
            return None
        chat_id = int(params.get("chat_id", 0))
        if chat_id in self.migrated:
            body = fixture("telegram", "error_migrated")
            body["parameters"]["migrate_to_chat_id"] = self.migrated[chat_id]
            return web.json_response(body, status=400)
        left = self._flood_until.get(chat_id, 0.0) - time.monotonic()
        if left > 0:
            body = fixture("telegram", "error_flood")
            wait = max(1, math.ceil(left))
            body["parameters"]["retry_after"] = wait
            body["description"] = f"Too Many Requests: retry after {wait}"
            return web.json_response(body, status=429)
        if method == "setMessageReaction":
            reaction = params.get("reaction")
            listed = json.loads(reaction) if isinstance(reaction, str) else reaction
            if any(r.get("emoji") not in self._allowed for r in listed or []):
                return _error("error_reaction_invalid")
        if params.get("parse_mode") == "HTML" and self.reject_html:
            return _error("error_parse")
        return None

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        timeout = min(float(params.get("timeout") or 0), 1.0)  # short polls keep tests fast
        async with self._new_update:
            # getUpdates with an offset confirms every update below it (Bot API).
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            if not self._updates and timeout:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._new_update.wait(), timeout)
            return list(self._updates)

    def unconfirmed(self) -> list[dict[str, Any]]:
        """Updates not yet confirmed by a later getUpdates offset."""
        return list(self._updates)

    def _answer(self, method: str, params: dict[str, Any], files: dict[str, Any]) -> Any:
        if method == "getMe":
            return fixture("telegram", "get_me")
        if method == "getWebhookInfo":
            info = fixture("telegram", "webhook_info")
            info["url"] = self.webhook_url
            return info
        if method == "deleteWebhook":
            self.webhook_url = ""
            return True
        if method in ("sendMessage", "sendPhoto", "sendDocument"):
            chat_id = int(params["chat_id"])
            sent = fixture("telegram", "sent_message")
            sent["message_id"] = self.next_message_id(chat_id)
            sent["chat"] = {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"}
            sent["text"] = params.get("text")
            if params.get("message_thread_id") is not None:
                sent["message_thread_id"] = int(params["message_thread_id"])
                sent["is_topic_message"] = True
            return sent
        if method == "editMessageText":
            return {"message_id": int(params["message_id"]), "text": params.get("text")}
        if method == "getFile":
            found = fixture("telegram", "file")
            found["file_id"] = params["file_id"]
            found["file_path"] = f"documents/{params['file_id']}"
            return found
        return True  # sendChatAction, setMessageReaction, answerCallbackQuery

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        file_id = request.match_info["path"].rsplit("/", 1)[-1]
        data = self.files.get(file_id)
        return web.Response(body=data) if data is not None else web.Response(status=404)


def _error(name: str) -> web.Response:
    body = fixture("telegram", name)
    return web.json_response(body, status=int(body["error_code"]))


def markup(call: Call) -> dict[str, Any]:
    raw = call.params.get("reply_markup")
    return json.loads(raw) if isinstance(raw, str) else (raw or {})
