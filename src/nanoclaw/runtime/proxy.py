"""The host-side credential proxy: runners call the model API through it, and only it holds the key.

Invariant 5: no secret enters a sandbox. Each runner gets its own random token (in its
``runner.json``); the proxy accepts a request only with a live token, maps it to the runner's
agent group (usage is attributed per group), replaces it with the real ``x-api-key`` and forwards
the request to the model API, streaming the answer back. Tokens are revoked when their runner
exits, so a stolen token dies with its container. The proxy listens on a Unix socket whose
folder is mounted read-only into each sandbox (or on TCP where sockets cannot cross the mount).

The proxy forwards only what it checked: the upstream URL is built from the raw request target
after validation (:func:`upstream_target`), never from a decoded or re-normalised form. Anything
that could climb out of ``/v1/`` once decoded (``.``/``..`` segments, encoded or not, ``%2f``,
backslashes, ``//``, NUL) and absolute-form targets are refused with a 400.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import secrets
import tempfile
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

if TYPE_CHECKING:  # aiohttp is imported when the proxy starts: a host with no key never loads it
    import aiohttp
    from aiohttp import web

from nanoclaw.runtime.plan import PROXY_SOCKET_NAME

log = logging.getLogger("nanoclaw.runtime.proxy")

DEFAULT_UPSTREAM = "https://api.anthropic.com"
MAX_REQUEST_BYTES = 32 * 1024 * 1024
UNIX_PATH_MAX_BYTES = 100
UPSTREAM_CONNECT_TIMEOUT_S = 10.0
UPSTREAM_TOTAL_TIMEOUT_S = 900.0
TOKEN_BYTES = 32
RATE_WINDOW_S = 60.0
# Never forwarded in either direction.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
CLIENT_CREDENTIAL_HEADERS = frozenset({"x-api-key", "authorization", "cookie"})
# Set on every answer the proxy itself gives (never on the model API's), so a caller can tell
# "the endpoint answered 502" from "the proxy could not reach the endpoint".
PROXY_ORIGIN_HEADER = "x-nanoclaw-proxy"
# The grant behind the host's own check token (`nanoclaw doctor`, setup's credential step).
CHECK_GRANT_ID = "_host-check"
PROXIED_PREFIX = "/v1/"


class UnsafeTargetError(ValueError):
    """A request target the proxy will not forward; the message says why."""


def upstream_target(raw_target: str) -> str:
    """The checked path (and query) to forward, from a request's raw, undecoded target.

    The path must be origin-form under ``/v1/`` and every segment, once percent-decoded,
    a plain name: not empty, not ``.`` or ``..``, no ``/``, ``\\`` or NUL. The path is
    forwarded exactly as received (still encoded), so what was checked is what the
    upstream sees.
    """
    if not raw_target.startswith("/") or raw_target.startswith("//"):
        raise UnsafeTargetError("only origin-form request targets are proxied")
    path, sep, query = raw_target.partition("?")
    if "#" in raw_target:
        raise UnsafeTargetError("a request target has no fragment")
    if not path.startswith(PROXIED_PREFIX):
        raise UnsafeTargetError("only /v1/ is proxied")
    if "\\" in path:
        raise UnsafeTargetError("backslashes are not allowed in the path")
    for segment in path[1:].split("/"):
        decoded = urllib.parse.unquote(segment, errors="strict")
        if not segment or decoded in (".", "..") or any(c in decoded for c in "/\\\x00"):
            raise UnsafeTargetError(f"path segment {segment!r} is not allowed")
    return path + sep + query


@dataclass
class Grant:
    agent_group_id: str
    session_id: str


@dataclass
class GroupUsage:
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0


@dataclass
class _UsageScan:
    """Picks usage figures out of a JSON body or an SSE stream as it passes."""

    usage: dict[str, int] = field(default_factory=dict)
    _buffer: bytes = b""

    def feed_sse(self, chunk: bytes) -> None:
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if line.startswith(b"data:"):
                self._take(line[5:])

    def feed_json(self, body: bytes) -> None:
        self._take(body)

    def _take(self, raw: bytes) -> None:
        try:
            data = json.loads(raw)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        for holder in (data, data.get("message") if isinstance(data.get("message"), dict) else {}):
            usage = holder.get("usage") if isinstance(holder, dict) else None
            if isinstance(usage, dict):
                for key, value in usage.items():
                    if isinstance(value, int):
                        self.usage[key] = max(self.usage.get(key, 0), value)


class RequestRateLimit:
    """At most ``per_minute`` requests per agent group in any 60 s window (0 = no limit)."""

    def __init__(self, *, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._recent: dict[str, deque[float]] = {}

    def wait_s(self, agent_group_id: str) -> float:
        """0 and the request is counted, or the seconds until the oldest one leaves the window."""
        if self.per_minute <= 0:
            return 0.0
        now = self.clock()
        recent = self._recent.setdefault(agent_group_id, deque())
        while recent and recent[0] <= now - RATE_WINDOW_S:
            recent.popleft()
        if len(recent) >= self.per_minute:
            return recent[0] + RATE_WINDOW_S - now
        recent.append(now)
        return 0.0


class CredentialProxy:
    def __init__(
        self,
        *,
        api_key: SecretStr | None,
        upstream_url: str | None,
        socket_dir: Path | None = None,
        tcp_host: str | None = None,
        tcp_port: int = 0,
        session_factory: Callable[[], aiohttp.ClientSession] | None = None,
        rate_limit: RequestRateLimit | None = None,
        auth_token: SecretStr | None = None,
    ) -> None:
        # A runaway agent loop cannot spend faster than this; the SDK honours retry-after.
        self.rate_limit = rate_limit or RequestRateLimit(per_minute=0)
        if socket_dir is None and tcp_host is None:
            raise ValueError("the proxy needs a socket folder or a TCP host")
        self._api_key = api_key
        self._auth_token = auth_token  # a gateway's bearer token, sent when there is no API key
        self.upstream_url = (upstream_url or DEFAULT_UPSTREAM).rstrip("/")
        self._socket_dir_wanted = socket_dir
        self.socket_dir: Path | None = None
        self.tcp_host = tcp_host
        self.tcp_port = tcp_port
        self._session_factory = session_factory or self._default_session
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._grants: dict[str, Grant] = {}
        self.usage: dict[str, GroupUsage] = {}

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def has_key(self) -> bool:
        return any(
            secret is not None and bool(secret.get_secret_value())
            for secret in (self._api_key, self._auth_token)
        )

    @property
    def available(self) -> bool:
        return self._runner is not None and self.has_key

    @property
    def socket_path(self) -> Path | None:
        return None if self.socket_dir is None else self.socket_dir / PROXY_SOCKET_NAME

    async def start(self) -> None:
        from aiohttp import web

        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            if self._socket_dir_wanted is not None:
                self.socket_dir = _socket_dir(self._socket_dir_wanted)
                path = self.socket_dir / PROXY_SOCKET_NAME
                path.unlink(missing_ok=True)
                site: web.BaseSite = web.UnixSite(runner, str(path))
                await site.start()
                # Sandboxed runners use another uid; the token, not the file mode, is the check.
                path.chmod(0o666)
            else:
                site = web.TCPSite(runner, self.tcp_host, self.tcp_port)
                await site.start()
                server = getattr(site, "_server", None)
                sockets = getattr(server, "sockets", None) or []
                if sockets:
                    self.tcp_port = int(sockets[0].getsockname()[1])
        except Exception:
            await runner.cleanup()
            raise
        self._runner = runner
        self._session = self._session_factory()
        where = self.socket_path or f"{self.tcp_host}:{self.tcp_port}"
        log.info(
            "credential proxy on %s → %s (key %s)",
            where,
            self.upstream_url,
            "configured" if self.has_key else "MISSING",
        )

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.socket_path is not None:
            self.socket_path.unlink(missing_ok=True)
            if self.socket_dir != self._socket_dir_wanted and self.socket_dir is not None:
                with contextlib.suppress(OSError):
                    self.socket_dir.rmdir()
        self._grants.clear()

    # -- tokens ---------------------------------------------------------------------------------
    def issue(self, *, agent_group_id: str, session_id: str) -> str:
        """A fresh token for one runner; any earlier token of the session dies."""
        self.revoke_session(session_id)
        token = "ncp-" + secrets.token_urlsafe(TOKEN_BYTES)
        self._grants[token] = Grant(agent_group_id=agent_group_id, session_id=session_id)
        return token

    def issue_check_token(self) -> str:
        """A token for the host's own one-request credential checks (kept by the host, 0600)."""
        return self.issue(agent_group_id=CHECK_GRANT_ID, session_id=CHECK_GRANT_ID)

    def revoke_session(self, session_id: str) -> None:
        for token in [t for t, g in self._grants.items() if g.session_id == session_id]:
            del self._grants[token]

    def live_tokens(self) -> int:
        return len(self._grants)

    # -- forwarding -----------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        import aiohttp
        from aiohttp import web
        from yarl import URL

        token = request.headers.get("x-api-key") or _bearer(request.headers.get("authorization"))
        grant = self._grants.get(token or "")
        if grant is None:
            return _error(401, "authentication_error", "unknown or expired sandbox token")
        if not self.has_key or self._session is None:
            return _error(503, "api_error", "the host has no model credential configured")
        try:
            target = upstream_target(request.raw_path)
        except (UnsafeTargetError, UnicodeDecodeError) as exc:
            log.warning("proxy: group %s refused target: %s", grant.agent_group_id, exc)
            return _error(400, "invalid_request_error", f"refused request target: {exc}")
        wait_s = self.rate_limit.wait_s(grant.agent_group_id)
        if wait_s > 0:
            refused = _error(
                429,
                "rate_limit_error",
                f"this agent is limited to {self.rate_limit.per_minute} model requests a minute",
            )
            refused.headers["retry-after"] = str(max(1, math.ceil(wait_s)))
            return refused
        usage = self.usage.setdefault(grant.agent_group_id, GroupUsage())
        usage.requests += 1
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in HOP_BY_HOP and k.lower() not in CLIENT_CREDENTIAL_HEADERS
        }
        if self._api_key is not None and self._api_key.get_secret_value():
            headers["x-api-key"] = self._api_key.get_secret_value()
        else:
            assert self._auth_token is not None
            headers["authorization"] = f"Bearer {self._auth_token.get_secret_value()}"
        headers["accept-encoding"] = "identity"
        body = await request.read()
        url = URL(self.upstream_url + target, encoded=True)  # as checked, never re-normalised
        try:
            async with self._session.request(
                request.method, url, headers=headers, data=body, allow_redirects=False
            ) as upstream:
                response = web.StreamResponse(status=upstream.status)
                for key, value in upstream.headers.items():
                    if key.lower() not in HOP_BY_HOP:
                        response.headers.add(key, value)
                await response.prepare(request)
                scan = _UsageScan()
                streaming = "text/event-stream" in upstream.headers.get("content-type", "")
                collected = bytearray()
                async for chunk in upstream.content.iter_any():
                    if streaming:
                        scan.feed_sse(chunk)
                    elif len(collected) < MAX_REQUEST_BYTES:
                        collected += chunk
                    await response.write(chunk)
                if not streaming:
                    scan.feed_json(bytes(collected))
                await response.write_eof()
        except (TimeoutError, aiohttp.ClientError) as exc:
            usage.errors += 1
            log.warning(
                "proxy: group %s %s %s failed upstream: %s",
                grant.agent_group_id,
                request.method,
                request.path,
                type(exc).__name__,
            )
            return _error(502, "api_error", "the model API could not be reached")
        if upstream.status >= 400:
            usage.errors += 1
        usage.input_tokens += scan.usage.get("input_tokens", 0)
        usage.output_tokens += scan.usage.get("output_tokens", 0)
        usage.cache_read_input_tokens += scan.usage.get("cache_read_input_tokens", 0)
        log.info(
            "proxy: group %s session %s %s %s → %d (in %d, out %d)",
            grant.agent_group_id,
            grant.session_id,
            request.method,
            request.path,
            upstream.status,
            scan.usage.get("input_tokens", 0),
            scan.usage.get("output_tokens", 0),
        )
        return response

    @staticmethod
    def _default_session() -> aiohttp.ClientSession:
        import aiohttp

        return aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(
                total=UPSTREAM_TOTAL_TIMEOUT_S, sock_connect=UPSTREAM_CONNECT_TIMEOUT_S
            ),
            auto_decompress=False,
        )


def _bearer(value: str | None) -> str | None:
    if value and value.lower().startswith("bearer "):
        return value[7:].strip()
    return None


def _error(status: int, kind: str, message: str) -> web.Response:
    from aiohttp import web

    body: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message}}
    return web.json_response(
        body, status=status, headers={"x-should-retry": "false", PROXY_ORIGIN_HEADER: "1"}
    )


def _socket_dir(wanted: Path) -> Path:
    """The socket's folder: ``wanted`` unless its path is too long for a Unix socket."""
    if len(str(wanted / PROXY_SOCKET_NAME).encode()) <= UNIX_PATH_MAX_BYTES:
        wanted.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            wanted.chmod(0o755)
        return wanted
    short = Path(tempfile.mkdtemp(prefix="nanoclaw-proxy-"))
    short.chmod(0o755)
    return short
