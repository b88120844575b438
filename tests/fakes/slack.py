"""A fake Slack: the Web API methods NanoClaw calls, file hosting and uploads, and a Socket Mode
websocket that pushes event envelopes and records the client's acks. Every call is recorded.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.call_log import CallLog

BOT_USER = "UBOT"
BOT_NAME = "andy"
TEAM = "T0001"


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    token: str | None


@dataclass
class FakeSlack(CallLog):
    bot_token: str = "xoxb-test"
    app_token: str = "xapp-test"
    calls: list[Call] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    uploads: dict[str, bytes] = field(default_factory=dict)
    rate_limit: dict[str, int] = field(default_factory=dict)  # method → 429s to answer first
    users: dict[str, str] = field(default_factory=lambda: {"U1": "Alice", "U2": "Bob"})
    url: str = ""

    def __post_init__(self) -> None:
        self._ts = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._sockets: list[web.WebSocketResponse] = []
        self._acks: dict[str, asyncio.Event] = {}
        self._changed = asyncio.Event()
        self.connections = 0

    # -- server ---------------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/files/{name}", self._file)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/link", self._socket)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def file_url(self, name: str) -> str:
        return f"{self.url}/files/{name}"

    # -- Web API --------------------------------------------------------------------------------
    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            params.update(await request.json())
        else:
            params.update(dict(await request.post()))
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") or params.get("token")
        self.calls.append(Call(method, params, token))
        self._changed.set()
        if self.rate_limit.get(method, 0) > 0:
            self.rate_limit[method] -= 1
            return web.json_response(
                {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "0"}
            )
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        if token != expected:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        return web.json_response(self._answer(method, params))

    def _answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {
                "ok": True,
                "user_id": BOT_USER,
                "user": BOT_NAME,
                "team_id": TEAM,
                "team": "Test",
                "bot_id": "B0001",
                "url": "https://test.slack.com/",
            }
        if method == "apps.connections.open":
            return {"ok": True, "url": self.url.replace("http", "ws", 1) + "/link"}
        if method == "chat.postMessage":
            ts = f"{int(time.time())}.{next(self._ts):06d}"
            return {
                "ok": True,
                "channel": params.get("channel"),
                "ts": ts,
                "message": {"text": params.get("text"), "ts": ts},
            }
        if method in ("chat.update", "reactions.add", "reactions.remove", "chat.postEphemeral"):
            return {"ok": True, "channel": params.get("channel"), "ts": params.get("ts")}
        if method == "users.info":
            name = self.users.get(str(params.get("user")), "Someone")
            return {
                "ok": True,
                "user": {
                    "id": params.get("user"),
                    "name": name.lower(),
                    "real_name": name,
                    "profile": {"display_name": name},
                },
            }
        if method == "conversations.open":
            return {"ok": True, "channel": {"id": "D" + str(params.get("users"))}}
        if method == "files.getUploadURLExternal":
            file_id = f"F{uuid.uuid4().hex[:8].upper()}"
            return {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}
        if method == "files.completeUploadExternal":
            files = params.get("files")
            listed = json.loads(files) if isinstance(files, str) else files
            return {"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in listed]}
        return {"ok": True}

    async def _file(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.bot_token}":
            return web.Response(status=403)
        data = self.files.get(request.match_info["name"])
        return web.Response(body=data) if data is not None else web.Response(status=404)

    async def _upload(self, request: web.Request) -> web.Response:
        self.uploads[request.match_info["file_id"]] = await request.read()
        return web.Response(text=f"OK - {len(self.uploads[request.match_info['file_id']])}")

    # -- Socket Mode ------------------------------------------------------------------------------
    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connections += 1
        self._sockets.append(ws)
        await ws.send_str(
            json.dumps(
                {"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0001"}}
            )
        )
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                envelope_id = json.loads(message.data).get("envelope_id")
                if envelope_id in self._acks:
                    self._acks[envelope_id].set()
        self._sockets.remove(ws)
        return ws

    async def wait_connected(self, within_s: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + within_s
        while not self._sockets:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("no Socket Mode connection")
            await asyncio.sleep(0.02)

    async def push(self, kind: str, payload: dict[str, Any], within_s: float = 10.0) -> None:
        """Send one envelope over Socket Mode and wait for the app's ack."""
        await self.wait_connected(within_s)
        envelope_id = uuid.uuid4().hex
        self._acks[envelope_id] = asyncio.Event()
        await self._sockets[-1].send_str(
            json.dumps(
                {
                    "envelope_id": envelope_id,
                    "type": kind,
                    "payload": payload,
                    "accepts_response_payload": False,
                }
            )
        )
        await asyncio.wait_for(self._acks[envelope_id].wait(), within_s)

    async def push_event(self, event: dict[str, Any]) -> None:
        event.setdefault("event_ts", event.get("ts"))
        await self.push(
            "events_api",
            {
                "token": "verification",
                "team_id": TEAM,
                "api_app_id": "A0001",
                "event": event,
                "type": "event_callback",
                "event_id": f"Ev{uuid.uuid4().hex[:10]}",
                "event_time": int(time.time()),
                "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
            },
        )

    async def click(
        self, *, user: str, channel: str, message_ts: str, button: dict[str, Any]
    ) -> None:
        await self.push(
            "interactive",
            {
                "type": "block_actions",
                "team": {"id": TEAM},
                "api_app_id": "A0001",
                "user": {"id": user, "team_id": TEAM},
                "channel": {"id": channel},
                "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
                "message": {"ts": message_ts, "type": "message", "text": "card"},
                "trigger_id": "t1",
                "response_url": f"{self.url}/response",
                "actions": [{**button, "block_id": "b1", "action_ts": str(time.time())}],
            },
        )

    # -- assertions -----------------------------------------------------------------------------
