"""The credential proxy forwards only checked paths under /v1/ (raw HTTP over its Unix socket)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from pydantic import SecretStr

from nanoclaw.runtime.proxy import CredentialProxy

KEY = "sk-ant-real-key-only-on-the-host"


@dataclass
class RecordingUpstream:
    """Answers every path and records the raw target and key it was sent."""

    seen: list[tuple[str, str | None]] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _any(self, request: web.Request) -> web.Response:
        self.seen.append((request.raw_path, request.headers.get("x-api-key")))
        return web.json_response({"ok": True})


@pytest.fixture
async def upstream() -> AsyncIterator[RecordingUpstream]:
    instance = RecordingUpstream()
    await instance.start()
    yield instance
    await instance.stop()


@pytest.fixture
async def proxy(upstream: RecordingUpstream, short_dir: Path) -> AsyncIterator[CredentialProxy]:
    instance = CredentialProxy(
        api_key=SecretStr(KEY),
        upstream_url=f"http://127.0.0.1:{upstream.port}",
        socket_dir=short_dir / "proxy",
    )
    await instance.start()
    yield instance
    await instance.stop()


async def raw_request(proxy: CredentialProxy, target: str, token: str) -> int:
    """Send one request line exactly as written (no client library normalises it)."""
    assert proxy.socket_path is not None
    reader, writer = await asyncio.open_unix_connection(str(proxy.socket_path))
    writer.write(
        (
            f"GET {target} HTTP/1.1\r\nHost: proxy\r\nx-api-key: {token}\r\n"
            "Connection: close\r\n\r\n"
        ).encode("latin-1")
    )
    await writer.drain()
    status_line = await reader.readline()
    await reader.read()
    writer.close()
    return int(status_line.split()[1])


REFUSED = [
    "/v1/%2e%2e/%2e%2e/etc/passwd",
    "/v1/%2E%2E/etc/passwd",
    "/v1/.%2e/etc/passwd",
    "/v1/%2e/messages",
    "/v1/../etc/passwd",
    "/v1/./messages",
    "/v1/..%2fetc/passwd",
    "/v1/%2f%2fevil/x",
    "/v1/messages\\..\\..\\etc",
    "/v1/%5c..%5cetc",
    "/v1//messages",
    "//evil.example/v1/messages",
    "http://evil.example/v1/messages",
    "/v1/messages%00",
    "/etc/passwd",
]


@pytest.mark.parametrize("target", REFUSED)
async def test_targets_that_could_leave_v1_are_refused_and_never_forwarded(
    proxy: CredentialProxy, upstream: RecordingUpstream, target: str
) -> None:
    token = proxy.issue(agent_group_id="ag", session_id="s")
    assert await raw_request(proxy, target, token) == 400
    assert upstream.seen == []


async def test_a_checked_path_reaches_the_upstream_exactly_with_the_real_key(
    proxy: CredentialProxy, upstream: RecordingUpstream
) -> None:
    token = proxy.issue(agent_group_id="ag", session_id="s")
    assert await raw_request(proxy, "/v1/messages", token) == 200
    assert await raw_request(proxy, "/v1/models/claude%20x?limit=5&after_id=a", token) == 200
    assert upstream.seen == [
        ("/v1/messages", KEY),
        ("/v1/models/claude%20x?limit=5&after_id=a", KEY),
    ]
