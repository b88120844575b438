"""A scripted fake of the Anthropic Messages API (``POST /v1/messages``), JSON and SSE, on loopback.

Tests queue responses (``reply``, ``tool_call``, ``error`` or a function of the request);
the fake serves them in order, answering as Server-Sent Events when the request asks to
stream, and records every request body and header. An empty queue answers with
``DEFAULT_TEXT`` so an unscripted call is visible in the test's assertions, never a hang.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

DEFAULT_TEXT = "(fake: no scripted response)"
Script = dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]
_ids = itertools.count(1)


def usage(
    input_tokens: int = 10, output_tokens: int = 5, cache_read: int = 0, cache_write: int = 0
) -> dict[str, int]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_input_tokens": cache_read,
        "cache_creation_input_tokens": cache_write,
    }


def text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def tool_block(name: str, tool_input: dict[str, Any], tool_id: str | None = None) -> dict[str, Any]:
    return {
        "type": "tool_use",
        "id": tool_id or f"toolu_{next(_ids):04d}",
        "name": name,
        "input": tool_input,
    }


def reply(
    *content: dict[str, Any] | str, stop_reason: str = "end_turn", **usage_kw: int
) -> dict[str, Any]:
    """A message response; strings become text blocks."""
    blocks = [text_block(c) if isinstance(c, str) else c for c in content]
    return {"content": blocks, "stop_reason": stop_reason, "usage": usage(**usage_kw)}


def tool_call(name: str, tool_input: dict[str, Any], *text: str, **usage_kw: int) -> dict[str, Any]:
    return reply(*text, tool_block(name, tool_input), stop_reason="tool_use", **usage_kw)


def error(
    status: int,
    message: str = "scripted error",
    *,
    retry: bool = True,
    error_type: str | None = None,
    retry_after_ms: int = 5,
) -> dict[str, Any]:
    types = {400: "invalid_request_error", 429: "rate_limit_error", 529: "overloaded_error"}
    headers = {"retry-after-ms": str(retry_after_ms)}
    if not retry:
        headers["x-should-retry"] = "false"
    return {
        "error": {
            "status": status,
            "type": error_type or types.get(status, "api_error"),
            "message": message,
            "headers": headers,
        }
    }


@dataclass
class Recorded:
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def system_text(self) -> str:
        system = self.body.get("system", "")
        if isinstance(system, str):
            return system
        return "\n".join(b.get("text", "") for b in system)

    @property
    def tool_names(self) -> list[str]:
        return [t["name"] for t in self.body.get("tools", [])]

    def all_text(self) -> str:
        """Every text (and tool result text) in the request's messages, joined."""
        parts: list[str] = []
        for message in self.messages:
            content = message["content"]
            if isinstance(content, str):
                parts.append(content)
                continue
            for block in content:
                if block.get("type") == "text":
                    parts.append(block["text"])
                elif block.get("type") == "tool_result":
                    inner = block.get("content")
                    parts.append(inner if isinstance(inner, str) else json.dumps(inner))
        return "\n".join(parts)

    def tool_results(self) -> list[dict[str, Any]]:
        last = self.messages[-1]["content"] if self.messages else []
        return [b for b in last if isinstance(b, dict) and b.get("type") == "tool_result"]


@dataclass
class FakeAnthropic:
    """Start with ``await fake.start()``; point the SDK at ``fake.base_url``."""

    host: str = "127.0.0.1"
    queue: list[Script] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    port: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    # When set, a request whose x-api-key / bearer token is not in it gets the API's 401.
    accept_tokens: set[str] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def push(self, *scripts: Script) -> None:
        self.queue.extend(scripts)

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/messages", self._messages)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_requests(self, count: int, timeout_s: float = 20.0) -> list[Recorded]:
        async def until() -> None:
            while len(self.requests) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(until(), timeout_s)
        return self.requests

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(Recorded(body=body, headers=dict(request.headers)))
        self.arrived.set()
        if self.accept_tokens is not None:
            bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not {request.headers.get("x-api-key", ""), bearer} & self.accept_tokens:
                return web.json_response(  # the shape of the API's own answer (errors docs)
                    {
                        "type": "error",
                        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
                    },
                    status=401,
                )
        script: Script = self.queue.pop(0) if self.queue else reply(DEFAULT_TEXT)
        spec = script(body) if callable(script) else script
        if "error" in spec:
            err = spec["error"]
            return web.json_response(
                {"type": "error", "error": {"type": err["type"], "message": err["message"]}},
                status=err["status"],
                headers=err["headers"],
            )
        message = {
            "id": f"msg_{next(_ids):06d}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "claude-test"),
            "content": spec["content"],
            "stop_reason": spec["stop_reason"],
            "stop_sequence": None,
            "usage": spec["usage"],
        }
        if not body.get("stream"):
            return web.json_response(message)
        return await self._sse(request, message)

    async def _sse(self, request: web.Request, message: dict[str, Any]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def event(name: str, data: dict[str, Any]) -> None:
            await response.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())

        start = {
            **message,
            "content": [],
            "stop_reason": None,
            "usage": {**message["usage"], "output_tokens": 1},
        }
        await event("message_start", {"type": "message_start", "message": start})
        for index, block in enumerate(message["content"]):
            if block["type"] == "text":
                await event(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
                text = block["text"]
                for piece in (text[: len(text) // 2], text[len(text) // 2 :]):
                    if piece:
                        await event(
                            "content_block_delta",
                            {
                                "type": "content_block_delta",
                                "index": index,
                                "delta": {"type": "text_delta", "text": piece},
                            },
                        )
            elif block["type"] in ("tool_use", "server_tool_use"):
                head = {**block, "input": {}}
                await event(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": head},
                )
                raw = json.dumps(block["input"])
                for piece in (raw[: len(raw) // 2], raw[len(raw) // 2 :]):
                    await event(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": piece},
                        },
                    )
            else:  # server tool results arrive whole
                await event(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": block},
                )
            await event("content_block_stop", {"type": "content_block_stop", "index": index})
        await event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": message["usage"]["output_tokens"]},
            },
        )
        await event("message_stop", {"type": "message_stop"})
        await response.write_eof()
        return response
