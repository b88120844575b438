"""A fake Discord: the gateway (zlib-stream frames, HELLO/IDENTIFY/READY, heartbeats, RESUME,
dispatches, close 4014) and the REST endpoints the adapter uses, on 127.0.0.1.

Every payload is built from a fixture in ``tests/fixtures/discord/`` (Discord developer
documentation shapes) with only ids and text substituted. Like Discord, the fake compresses
each gateway connection with one zlib context, every message ending in the Z_SYNC_FLUSH
suffix ``00 00 ff ff``; keeps every dispatch of a session so a RESUME replays what was
missed; closes with 4014 when IDENTIFY asks for the Message Content intent the app lacks;
answers 429 with ``retry_after`` and the ``X-RateLimit-*`` headers (``rate_limit``); and counts
snowflakes upward. Every REST call and every gateway frame received is recorded.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.call_log import CallLog
from tests.fakes.fixtures import fixture

API = "/api/v10"
BOT_ID = "1100000000000000001"
GUILD_ID = "1200000000000000001"
BOT_ROLE_ID = "1200000000000000002"
CHANNEL_ID = "1300000000000000001"  # #general
THREAD_ID = "1300000000000000002"  # a public thread of #general
USER_ID = "1100000000000000042"
INTENT_MESSAGE_CONTENT = 1 << 15  # Gateway › Gateway Intents
ZLIB_SUFFIX = b"\x00\x00\xff\xff"


@dataclass
class Call:
    method: str  # "POST /channels/{id}/messages", ...
    params: dict[str, Any]  # the JSON body (or payload_json of a multipart body)
    path: str = ""
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    at: float = 0.0  # time.monotonic() when it arrived
    status: int = 200  # what the fake answered
    result: Any = None


@dataclass
class Frame:
    """One gateway frame the bot sent (decoded)."""

    op: int
    d: Any
    connection: int


class _Connection:
    """One gateway socket: its zlib context and the session it belongs to."""

    def __init__(self, ws: web.WebSocketResponse, number: int, request: web.Request) -> None:
        self.ws = ws
        self.number = number
        self.request = request
        self.zlib = zlib.compressobj()
        self.session_id: str | None = None

    async def send(self, payload: dict[str, Any]) -> None:
        data = self.zlib.compress(json.dumps(payload).encode()) + self.zlib.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(ZLIB_SUFFIX)
        await self.ws.send_bytes(data)


@dataclass
class FakeDiscord(CallLog):
    token: str = "fake-discord-bot-token"
    message_content_intent: bool = True  # the app's toggle: off → IDENTIFY is closed with 4014
    heartbeat_interval_ms: int = 41250
    calls: list[Call] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)
    cdn: dict[str, bytes] = field(default_factory=dict)  # attachment path → bytes
    url: str = ""

    def __post_init__(self) -> None:
        self._ids = itertools.count(1400000000000000001)
        self._sessions = itertools.count(1)
        self._connections = itertools.count(1)
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._live: _Connection | None = None
        self._open: set[_Connection] = set()
        self._stopping = False
        self._session: str | None = None
        self._seq = 0
        self._history: list[dict[str, Any]] = []  # every dispatch of the current session
        self._limited: dict[str, list[float]] = {}  # route → retry_after of the next 429s
        self.messages: dict[str, dict[str, Any]] = {}  # id → every message the fake knows
        self.compress: list[str] = []  # the compress= query of each gateway connection
        self.close_codes: list[int] = []

    # -- server -----------------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/cdn/{path:.+}", self._cdn)
        app.router.add_route("*", API + "/{path:.+}", self._rest)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        """Drop every gateway socket and refuse new ones: a bot still running (a host service
        in the installer tests) reconnects at once, and cleanup must not wait for it."""
        self._stopping = True
        for conn in list(self._open):
            if conn.request.transport is not None:
                conn.request.transport.abort()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_base_url(self) -> str:
        return self.url + API

    def snowflake(self) -> str:
        return str(next(self._ids))

    # -- platform limits ----------------------------------------------------------------------
    def rate_limit(self, route: str, *retry_after_s: float) -> None:
        """The next calls of ``route`` ("POST /channels/{id}/messages") answer 429, in order."""
        self._limited.setdefault(route, []).extend(retry_after_s)

    # -- gateway ------------------------------------------------------------------------------
    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        if self._stopping:
            return web.Response(status=503)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = _Connection(ws, next(self._connections), request)
        self.compress.append(request.query.get("compress", ""))
        if request.query.get("compress") != "zlib-stream":
            await ws.close(code=4000, message=b"this fake speaks zlib-stream only")
            return ws
        self._live = conn
        self._open.add(conn)
        hello = fixture("discord", "hello")
        hello["d"]["heartbeat_interval"] = self.heartbeat_interval_ms
        await conn.send(hello)
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            self.frames.append(Frame(int(frame["op"]), frame.get("d"), conn.number))
            self._changed.set()
            await self._on_frame(conn, frame)
        self._open.discard(conn)
        if self._live is conn:
            self._live = None
        return ws

    async def _on_frame(self, conn: _Connection, frame: dict[str, Any]) -> None:
        op = int(frame["op"])
        raw = frame.get("d")
        d: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if op == 1:  # HEARTBEAT → HEARTBEAT ACK
            await conn.send(fixture("discord", "heartbeat_ack"))
        elif op == 2:  # IDENTIFY
            if d.get("token") != self.token:
                await self._close(conn, 4004)
            elif int(d.get("intents") or 0) & INTENT_MESSAGE_CONTENT and not (
                self.message_content_intent
            ):
                await self._close(conn, 4014)
            else:
                await self._ready(conn)
        elif op == 6:  # RESUME
            if d.get("session_id") != self._session or d.get("token") != self.token:
                await conn.send(fixture("discord", "invalid_session"))
                return
            conn.session_id = self._session
            for missed in self._history:
                if int(missed["s"]) > int(d.get("seq") or 0):
                    await conn.send(missed)
            resumed = fixture("discord", "resumed")
            resumed["s"] = self._seq
            await conn.send(resumed)

    async def _close(self, conn: _Connection, code: int) -> None:
        self.close_codes.append(code)
        await conn.ws.close(code=code)

    async def _ready(self, conn: _Connection) -> None:
        self._session = f"session-{next(self._sessions)}"
        self._seq = 0
        self._history = []
        conn.session_id = self._session
        ready = fixture("discord", "ready")
        ready["d"]["user"] = fixture("discord", "user_bot")
        ready["d"]["session_id"] = self._session
        ready["d"]["resume_gateway_url"] = self.url.replace("http", "ws") + "/gateway"
        ready["d"]["guilds"] = [{"id": GUILD_ID, "unavailable": True}]
        await self._dispatch_on(conn, ready)
        guild = fixture("discord", "guild_create")
        await self._dispatch_on(conn, {"op": 0, "t": "GUILD_CREATE", "d": guild})

    async def _dispatch_on(self, conn: _Connection | None, payload: dict[str, Any]) -> None:
        self._seq += 1
        payload["s"] = self._seq
        self._history.append(payload)
        if conn is not None and not conn.ws.closed:
            await conn.send(payload)

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a dispatch (op 0) on the live session; kept for a RESUME if the socket is down."""
        await self._dispatch_on(self._live, {"op": 0, "t": event, "d": data})

    def drop(self) -> None:
        """The connection drops (no close frame): the bot must RESUME to get what it missed."""
        conn, self._live = self._live, None
        assert conn is not None and conn.request.transport is not None
        conn.request.transport.abort()

    def identified(self) -> list[Frame]:
        return [f for f in self.frames if f.op == 2]

    def resumes(self) -> list[Frame]:
        return [f for f in self.frames if f.op == 6]

    def heartbeats(self) -> list[Frame]:
        return [f for f in self.frames if f.op == 1]

    def connected(self) -> bool:
        return self._live is not None and self._live.session_id is not None

    # -- events ------------------------------------------------------------------------------
    def message(
        self,
        content: str,
        *,
        channel_id: str = CHANNEL_ID,
        user_id: str = USER_ID,
        name: str = "Alice",
        dm: bool = False,
        mention_bot: bool = False,
        mention_role: bool = False,
        reply_to: dict[str, Any] | None = None,
        attachments: dict[str, bytes] | None = None,
    ) -> dict[str, Any]:
        """A MESSAGE_CREATE as Discord sends it (mentions computed from ``<@id>`` tokens)."""
        msg: dict[str, Any] = fixture("discord", "message_create")
        msg["id"] = self.snowflake()
        msg["channel_id"] = channel_id
        msg["author"]["id"], msg["author"]["global_name"] = user_id, name
        if mention_bot:
            content = f"<@{BOT_ID}> {content}"
        if mention_role:
            content = f"<@&{BOT_ROLE_ID}> {content}"
        msg["content"] = content
        if f"<@{BOT_ID}>" in content:
            msg["mentions"].append({**fixture("discord", "user_bot"), "member": {"roles": []}})
        if f"<@&{BOT_ROLE_ID}>" in content:
            msg["mention_roles"].append(BOT_ROLE_ID)
        if dm:
            del msg["guild_id"], msg["member"]
        if reply_to is not None:
            msg["type"] = 19
            msg["message_reference"] = {
                "type": 0, "message_id": reply_to["id"], "channel_id": reply_to["channel_id"],
                **({"guild_id": reply_to["guild_id"]} if "guild_id" in reply_to else {}),
            }  # fmt: skip
            msg["referenced_message"] = reply_to
            if reply_to["author"]["id"] == BOT_ID:  # a reply pings its author (the default)
                msg["mentions"].append(fixture("discord", "user_bot"))
        for filename, data in (attachments or {}).items():
            item = fixture("discord", "attachment")
            item["id"] = self.snowflake()
            item["filename"], item["size"] = filename, len(data)
            path = f"attachments/{channel_id}/{item['id']}/{filename}"
            item["url"] = item["proxy_url"] = f"{self.url}/cdn/{path}"
            self.cdn[path] = data
            msg["attachments"].append(item)
        self.messages[msg["id"]] = msg
        return msg

    async def send_message(self, msg: dict[str, Any]) -> None:
        await self.dispatch("MESSAGE_CREATE", msg)

    async def click(self, card: Call, index: int, *, user_id: str = USER_ID) -> str:
        """The INTERACTION_CREATE a click on button ``index`` of a sent card produces."""
        sent = card.result
        button = sent["components"][0]["components"][index]
        interaction = fixture("discord", "interaction_create")
        interaction["id"] = self.snowflake()
        interaction["token"] = f"token-{interaction['id']}"
        interaction["channel_id"] = sent["channel_id"]
        interaction["channel"]["id"] = sent["channel_id"]
        interaction["user"]["id"] = user_id
        interaction["data"]["custom_id"] = button["custom_id"]
        interaction["message"] = sent
        await self.dispatch("INTERACTION_CREATE", interaction)
        return str(interaction["id"])

    # -- REST ---------------------------------------------------------------------------------
    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        data = self.cdn.get(request.match_info["path"])
        return web.Response(body=data) if data is not None else web.Response(status=404)

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"]
        route = f"{request.method} {_template(path)}"
        params: dict[str, Any] = {}
        files: dict[str, tuple[str, bytes]] = {}
        if request.content_type == "multipart/form-data":
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    files[key] = (value.filename, value.file.read())
                elif key == "payload_json":
                    params = json.loads(str(value))
        elif request.can_read_body:
            params = await request.json()
        call = Call(route, params, path, files, time.monotonic())
        self.calls.append(call)
        self._changed.set()
        if request.headers.get("Authorization") != f"Bot {self.token}":
            call.status = 401
            return _json({"message": "401: Unauthorized", "code": 0}, status=401)
        waits = self._limited.get(route)
        if waits:
            call.status = 429
            return self._too_many(waits.pop(0))
        status, body = self._answer(route, path, params, files)
        call.status, call.result = status, body
        if body is None:
            return web.Response(status=status)
        return _json(body, status=status, headers=_bucket_headers(remaining=4))

    def _too_many(self, retry_after_s: float) -> web.Response:
        body = fixture("discord", "rate_limited")
        body["retry_after"] = retry_after_s
        headers = {
            **_bucket_headers(remaining=0, reset_after=retry_after_s),
            "Retry-After": str(max(1, round(retry_after_s))),
            "X-RateLimit-Scope": "user",
            "Via": "1.1 google",  # Discord's answers pass its proxy (discord.py checks)
        }
        return _json(body, status=429, headers=headers)

    def _answer(
        self, route: str, path: str, params: dict[str, Any], files: dict[str, tuple[str, bytes]]
    ) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if route == "GET /users/@me":
            return 200, fixture("discord", "user_bot")
        if route in ("GET /oauth2/applications/@me", "GET /applications/@me"):
            app = fixture("discord", "application")
            if not self.message_content_intent:
                app["flags"] = 0
            return 200, app
        if route == "GET /gateway/bot":
            info = fixture("discord", "gateway_bot")
            info["url"] = self.url.replace("http", "ws") + "/gateway"
            return 200, info
        if route == "POST /channels/{id}/messages":
            return 200, self._sent(parts[1], params, files)
        if route == "PATCH /channels/{id}/messages/{id}":
            known = self.messages.get(parts[3])
            if known is None:
                return 404, {"message": "Unknown Message", "code": 10008}
            known.update({k: v for k, v in params.items() if k in ("content", "components")})
            return 200, known
        if route.startswith("PUT /channels/{id}/messages/{id}/reactions/"):
            return 204, None
        if route == "POST /channels/{id}/typing":
            return 204, None
        if route == "POST /users/@me/channels":
            channel = fixture("discord", "dm_channel")
            channel["id"] = str(int(params["recipient_id"]) + 1)  # the DM channel: a snowflake
            channel["recipients"][0]["id"] = str(params["recipient_id"])
            return 200, channel
        if route == "GET /channels/{id}":
            guild = fixture("discord", "guild_create")
            for channel in guild["channels"] + guild["threads"]:
                if channel["id"] == parts[1]:
                    return 200, channel
            return 404, {"message": "Unknown Channel", "code": 10003}
        if route == "POST /interactions/{id}/{token}/callback":
            answer = fixture("discord", "interaction_callback_response")
            answer["interaction"]["id"] = parts[1]
            return 200, answer
        return 404, {"message": f"404: Not Found ({route})", "code": 0}

    def _sent(
        self, channel_id: str, params: dict[str, Any], files: dict[str, tuple[str, bytes]]
    ) -> dict[str, Any]:
        msg: dict[str, Any] = fixture("discord", "message_create")
        msg["id"] = self.snowflake()
        msg["channel_id"] = channel_id
        msg["author"] = fixture("discord", "user_bot")
        msg.pop("member", None)
        msg.pop("guild_id", None)
        msg["content"] = params.get("content") or ""
        msg["components"] = params.get("components") or []
        for index, (filename, data) in enumerate(files.values()):
            item = fixture("discord", "attachment")
            item["id"] = str(index)
            item["filename"], item["size"] = filename, len(data)
            msg["attachments"].append(item)
        self.messages[msg["id"]] = msg
        return msg

    def sent(self, channel_id: str | None = None) -> list[Call]:
        """Every accepted POST /channels/{id}/messages (to ``channel_id`` when given)."""
        return [
            c
            for c in self.called("POST /channels/{id}/messages")
            if c.status == 200 and (channel_id is None or c.path.split("/")[2] == channel_id)
        ]


def _json(body: Any, *, status: int, headers: dict[str, str] | None = None) -> web.Response:
    """JSON with the bare ``application/json`` type Discord sends (discord.py compares it exactly)."""
    return web.Response(
        body=json.dumps(body).encode(),
        status=status,
        headers={**(headers or {}), "Content-Type": "application/json"},
    )


def _template(path: str) -> str:
    """``/channels/123/messages`` → ``/channels/{id}/messages`` (snowflakes become ``{id}``)."""
    parts = path.strip("/").split("/")
    out: list[str] = []
    for i, part in enumerate(parts):
        if part.isdigit():
            out.append("{id}")
        elif i == 2 and parts[0] == "interactions":
            out.append("{token}")
        elif i == 5 and parts[0] == "channels" and parts[4] == "reactions":
            out.append("{emoji}")
        else:
            out.append(part)
    return "/" + "/".join(out)


def _bucket_headers(*, remaining: int, reset_after: float = 1.0) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
        "X-RateLimit-Reset-After": f"{reset_after:.3f}",
        "X-RateLimit-Bucket": "fake-bucket-messages",
    }
