"""A small Telegram Bot API client over httpx: JSON and multipart calls, errors, downloads.

A 429 (flood control) is raised as ``PlatformRateLimitError`` with the ``retry_after`` the Bot
API gave, of any length: waiting is the outbound scheduler's job (channels/outbound.py),
never this client's. The token is part of every URL, so URLs are never logged or put into
error messages.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx

from nanoclaw.channels.outbound import PlatformRateLimitError
from nanoclaw.errors import ChannelError

log = logging.getLogger("nanoclaw.channels.telegram")

REQUEST_TIMEOUT_S = 30.0

# httpx logs every request URL at INFO, and Bot API URLs contain the token.
logging.getLogger("httpx").setLevel(logging.WARNING)


class TelegramApiError(ChannelError):
    """The Bot API answered ``ok: false`` (or could not be reached: ``code`` None)."""

    def __init__(
        self,
        method: str,
        description: str,
        *,
        code: int | None,
        migrate_to_chat_id: int | None = None,
    ) -> None:
        super().__init__(f"Telegram {method}: {description}", channel="telegram")
        self.method = method
        self.code = code
        self.description = description
        self.migrate_to_chat_id = migrate_to_chat_id  # "group chat was upgraded to a supergroup"


class TelegramFloodWaitError(PlatformRateLimitError):
    """429 Too Many Requests with ``parameters.retry_after`` (ResponseParameters)."""

    def __init__(self, method: str, description: str, *, retry_after_s: float) -> None:
        super().__init__(
            f"Telegram {method}: {description}", channel="telegram", retry_after_s=retry_after_s
        )
        self.method = method


class TelegramApi:
    def __init__(
        self,
        *,
        token: str,
        base_url: str = "https://api.telegram.org",
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._token = token
        self.base_url = base_url.rstrip("/")
        self._client = client or httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        files: dict[str, tuple[str, bytes]] | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        url = f"{self.base_url}/bot{self._token}/{method}"
        timeout = timeout_s or REQUEST_TIMEOUT_S
        try:
            if files:
                data = {
                    k: v if isinstance(v, str) else json.dumps(v)
                    for k, v in (params or {}).items()
                    if v is not None
                }
                response = await self._client.post(url, data=data, files=files, timeout=timeout)
            else:
                response = await self._client.post(
                    url,
                    json={k: v for k, v in (params or {}).items() if v is not None},
                    timeout=timeout,
                )
        except httpx.HTTPError as exc:
            raise TelegramApiError(method, type(exc).__name__, code=None) from None
        try:
            body = response.json()
        except ValueError:
            raise TelegramApiError(
                method, f"HTTP {response.status_code}", code=response.status_code
            ) from None
        if body.get("ok"):
            return body.get("result")
        parameters = body.get("parameters") or {}
        code = body.get("error_code") or response.status_code
        description = str(body.get("description") or "error")
        if code == 429:
            retry_after = parameters.get("retry_after")
            raise TelegramFloodWaitError(
                method, description, retry_after_s=float(retry_after or 1.0)
            )
        migrate = parameters.get("migrate_to_chat_id")
        raise TelegramApiError(
            method,
            description,
            code=code,
            migrate_to_chat_id=int(migrate) if migrate is not None else None,
        )

    async def download(self, file_path: str) -> bytes:
        url = f"{self.base_url}/file/bot{self._token}/{file_path}"
        try:
            response = await self._client.get(url)
        except httpx.HTTPError as exc:
            raise TelegramApiError("download", type(exc).__name__, code=None) from None
        if response.status_code != 200:
            raise TelegramApiError(
                "download", f"HTTP {response.status_code}", code=response.status_code
            )
        return response.content
