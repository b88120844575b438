"""A fake Slack: the Web API methods NanoClaw calls, file hosting and uploads, and a Socket Mode
websocket that pushes event envelopes and records the client's acks. Every call is recorded.

Every payload is built from a fixture in ``tests/fixtures/slack/`` (the Events API, Socket
Mode and Web API references) with only ids and text substituted. The fake models Slack's
limits: a user's text arrives escaped (``&amp; &lt; &gt;``, as Slack sends it), an
envelope can be redelivered with ``retry_attempt`` (``redeliver``), Slack can send a
``disconnect`` envelope (``disconnect``) and refuse new connections (``refuse_connections``),
and a method can answer 429 with a ``Retry-After`` header (``rate_limit``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.call_log import CallLog
from tests.fakes.fixtures import fixture

BOT_USER = "UBOT"
BOT_NAME = "andy"
TEAM = "T0001"


def slack_escape(text: str) -> str:
    """How Slack sends a user's text: ``&``, ``<`` and ``>`` escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    token: str | None
    result: dict[str, Any] | None = None


@dataclass
class FakeSlack(CallLog):
    bot_token: str = "xoxb-test"
    app_token: str = "xapp-test"
    calls: list[Call] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    uploads: dict[str, bytes] = field(default_factory=dict)
    rate_limit: dict[str, int] = field(default_factory=dict)  # method → 429s to answer first
    retry_after_s: int = 0  # the Retry-After header of a 429
    rate_limited_channels: dict[str, int] = field(default_factory=dict)  # channel → 429s first
    users: dict[str, str] = field(default_factory=lambda: {"U1": "Alice", "U2": "Bob"})
    channels: dict[str, str] = field(default_factory=lambda: {"C1": "general", "C2": "random"})
    refuse_connections: bool = False  # the Socket Mode endpoint answers 503 (reconnects fail)
    url: str = ""

    def __post_init__(self) -> None:
        self._ts = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._sockets: list[web.WebSocketResponse] = []
        self._acks: dict[str, asyncio.Event] = {}
        self._changed = asyncio.Event()
        self.connections = 0
        self._last_envelope: dict[str, Any] | None = None

    # -- server ---------------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)  # users.info, conversations.info: GET
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
        if request.method == "GET":
            pass
        elif request.content_type == "application/json":
            params.update(await request.json())
        else:
            params.update(dict(await request.post()))
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") or params.get("token")
        call = Call(method, params, token)
        self.calls.append(call)
        self._changed.set()
        channel = str(params.get("channel") or "")
        if self.rate_limited_channels.get(channel, 0) > 0 and method == "chat.postMessage":
            self.rate_limited_channels[channel] -= 1
            return web.json_response(
                fixture("slack", "error_ratelimited"),
                status=429,
                headers={"Retry-After": str(self.retry_after_s)},
            )
        if self.rate_limit.get(method, 0) > 0:
            self.rate_limit[method] -= 1
            return web.json_response(
                fixture("slack", "error_ratelimited"),
                status=429,
                headers={"Retry-After": str(self.retry_after_s)},
            )
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        if token != expected:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        call.result = self._answer(method, params)
        return web.json_response(call.result)

    def _answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return dict(
                fixture("slack", "auth_test"), user_id=BOT_USER, user=BOT_NAME, team_id=TEAM
            )
        if method == "apps.connections.open":
            return dict(
                fixture("slack", "apps_connections_open"),
                url=self.url.replace("http", "ws", 1) + "/link",
            )
        if method == "chat.postMessage":
            ts = f"{int(time.time())}.{next(self._ts):06d}"
            sent = fixture("slack", "chat_post_message")
            sent["channel"], sent["ts"] = params.get("channel"), ts
            sent["message"].update(text=params.get("text"), ts=ts)
            return dict(sent)
        if method in ("chat.update", "reactions.add", "reactions.remove", "chat.postEphemeral"):
            return {"ok": True, "channel": params.get("channel"), "ts": params.get("ts")}
        if method == "users.info":
            user = str(params.get("user"))
            name = self.users.get(user)
            if name is None:
                return {"ok": False, "error": "user_not_found"}
            found = fixture("slack", "users_info")
            found["user"].update(id=user, name=name.lower(), real_name=name)
            found["user"]["profile"].update(real_name=name, display_name=name)
            return dict(found)
        if method == "conversations.info":
            channel = str(params.get("channel"))
            if channel not in self.channels:
                return {"ok": False, "error": "channel_not_found"}
            found = fixture("slack", "conversations_info")
            found["channel"].update(id=channel, name=self.channels[channel])
            return dict(found)
        if method == "conversations.open":
            return {"ok": True, "channel": {"id": "D" + str(params.get("users"))}}
        if method == "files.getUploadURLExternal":
            file_id = f"F{uuid.uuid4().hex[:8].upper()}"
            return {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}
        if method == "files.completeUploadExternal":
            files = params.get("files")
            listed = json.loads(files) if isinstance(files, str) else files
            return {
                "ok": True,
                "files": [{"id": f["id"], "title": f.get("title")} for f in listed or []],
            }
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
    async def _socket(self, request: web.Request) -> web.StreamResponse:
        if self.refuse_connections:
            return web.Response(status=503, text="Service Unavailable")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connections += 1
        self._sockets.append(ws)
        await ws.send_str(json.dumps(fixture("slack", "socket_hello")))
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                envelope_id = json.loads(message.data).get("envelope_id")
                if envelope_id in self._acks:
                    self._acks[envelope_id].set()
        if ws in self._sockets:
            self._sockets.remove(ws)
        return ws

    async def wait_connected(self, within_s: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + within_s
        while not self._sockets:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("no Socket Mode connection")
            await asyncio.sleep(0.02)

    async def _send_envelope(self, envelope: dict[str, Any], within_s: float) -> None:
        await self.wait_connected(within_s)
        self._acks[envelope["envelope_id"]] = asyncio.Event()
        self._last_envelope = envelope
        await self._sockets[-1].send_str(json.dumps(envelope))
        await asyncio.wait_for(self._acks[envelope["envelope_id"]].wait(), within_s)

    async def push(self, kind: str, payload: dict[str, Any], within_s: float = 10.0) -> None:
        """Send one envelope over Socket Mode and wait for the app's ack."""
        name = "socket_interactive" if kind == "interactive" else "socket_envelope"
        envelope = fixture("slack", name)
        envelope.update(envelope_id=uuid.uuid4().hex, type=kind, payload=payload)
        await self._send_envelope(envelope, within_s)

    async def redeliver(self, reason: str = "timeout", within_s: float = 10.0) -> None:
        """Slack's redelivery of the last envelope: a new envelope id, ``retry_attempt`` + 1."""
        assert self._last_envelope is not None
        envelope = json.loads(json.dumps(self._last_envelope))
        envelope["envelope_id"] = uuid.uuid4().hex
        envelope["retry_attempt"] = int(envelope.get("retry_attempt") or 0) + 1
        envelope["retry_reason"] = reason
        await self._send_envelope(envelope, within_s)

    async def disconnect(self, reason: str = "refresh_requested") -> None:
        """Slack's ``disconnect`` message on every open socket (the client should reconnect)."""
        frame = fixture("slack", "socket_disconnect")
        frame["reason"] = reason
        for ws in list(self._sockets):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_str(json.dumps(frame))

    async def drop_sockets(self) -> None:
        """The server side closes every socket (a network drop as the client sees it)."""
        for ws in list(self._sockets):
            await ws.close()
            if ws in self._sockets:
                self._sockets.remove(ws)

    def message_event(
        self,
        text: str,
        *,
        channel: str = "D1",
        user: str = "U1",
        escaped: bool = True,
        **extra: Any,
    ) -> dict[str, Any]:
        """A user's message event (fixture ``event_message``); ``text`` is what the user typed
        and arrives escaped as Slack sends it, unless ``escaped=False`` (already Slack markup)."""
        event = fixture("slack", "event_message")
        ts = f"1700000000.{next(self._ts):06d}"
        wire = slack_escape(text) if escaped else text
        event.update(text=wire, user=user, channel=channel, ts=ts, event_ts=ts)
        event["channel_type"] = "im" if channel.startswith("D") else "channel"
        event["blocks"][0]["elements"][0]["elements"][0]["text"] = text
        event.update(extra)
        return dict(event)

    async def push_event(self, event: dict[str, Any]) -> None:
        event.setdefault("event_ts", event.get("ts"))
        wrapper = fixture("slack", "event_callback")
        wrapper.update(
            team_id=TEAM,
            event=event,
            event_id=f"Ev{uuid.uuid4().hex[:10]}",
            event_time=int(time.time()),
        )
        wrapper["authorizations"][0].update(team_id=TEAM, user_id=BOT_USER)
        await self.push("events_api", wrapper)

    async def click(
        self, *, user: str, channel: str, message_ts: str, button: dict[str, Any]
    ) -> None:
        """A block_actions click (fixture ``block_actions``) on a button of a posted card."""
        payload = fixture("slack", "block_actions")
        payload["user"].update(id=user, team_id=TEAM)
        payload["team"]["id"] = TEAM
        payload["channel"]["id"] = channel
        payload["container"].update(message_ts=message_ts, channel_id=channel)
        payload["message"]["ts"] = message_ts
        payload["response_url"] = f"{self.url}/response"
        payload["actions"] = [{**button, "block_id": "b1", "action_ts": str(time.time())}]
        await self.push("interactive", payload)
