"""A fake Telegram Bot API: long-polled getUpdates, the send/edit/react/callback methods, getFile
and file downloads, multipart uploads. Every call is recorded; failures can be injected.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.call_log import CallLog

BOT_ID = 999
BOT_USERNAME = "andy_bot"


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
    url: str = ""

    def __post_init__(self) -> None:
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(100)
        self._new_update = asyncio.Condition()
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None

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

    # -- injecting updates ------------------------------------------------------------------------
    async def push(self, update: dict[str, Any]) -> int:
        update_id = next(self._update_ids)
        async with self._new_update:
            self._updates.append({"update_id": update_id, **update})
            self._new_update.notify_all()
        return update_id

    def message(
        self,
        text: str | None,
        *,
        chat_id: int = 42,
        user_id: int = 42,
        chat_type: str = "private",
        first_name: str = "Alice",
        **extra: Any,
    ) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": 1700000000,
            "chat": {"id": chat_id, "type": chat_type},
            "from": {"id": user_id, "is_bot": False, "first_name": first_name},
            **extra,
        }
        if text is not None:
            msg["text"] = text
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
            return web.json_response({"ok": True, "result": await self._get_updates(params)})
        if params.get("parse_mode") == "HTML" and self.reject_html:
            return web.json_response(
                {
                    "ok": False,
                    "error_code": 400,
                    "description": "Bad Request: can't parse entities: unexpected end tag",
                },
                status=400,
            )
        call.result = self._answer(method, params, files)
        return web.json_response({"ok": True, "result": call.result})

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        timeout = min(float(params.get("timeout") or 0), 1.0)  # short polls keep tests fast
        async with self._new_update:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            if not self._updates and timeout:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._new_update.wait(), timeout)
            return list(self._updates)

    def _answer(self, method: str, params: dict[str, Any], files: dict[str, Any]) -> Any:
        if method == "getMe":
            return {"id": BOT_ID, "is_bot": True, "first_name": "Andy", "username": BOT_USERNAME}
        if method in ("sendMessage", "sendPhoto", "sendDocument"):
            return {
                "message_id": next(self._message_ids),
                "date": 1700000000,
                "chat": {"id": int(params["chat_id"]), "type": "private"},
                "text": params.get("text"),
            }
        if method == "editMessageText":
            return {"message_id": int(params["message_id"]), "text": params.get("text")}
        if method == "getFile":
            return {"file_id": params["file_id"], "file_path": f"documents/{params['file_id']}"}
        return True  # sendChatAction, setMessageReaction, answerCallbackQuery

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        file_id = request.match_info["path"].rsplit("/", 1)[-1]
        data = self.files.get(file_id)
        return web.Response(body=data) if data is not None else web.Response(status=404)


def markup(call: Call) -> dict[str, Any]:
    raw = call.params.get("reply_markup")
    return json.loads(raw) if isinstance(raw, str) else (raw or {})
