"""A small Telegram Bot API client over httpx: JSON and multipart calls, 429 back-off, downloads.

The token is part of every URL, so URLs are never logged or put into error messages.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from nanoclaw.errors import ChannelError

log = logging.getLogger("nanoclaw.channels.telegram")

REQUEST_TIMEOUT_S = 30.0
RATE_LIMIT_RETRIES = 2
MAX_RETRY_AFTER_S = 30.0

# httpx logs every request URL at INFO, and Bot API URLs contain the token.
logging.getLogger("httpx").setLevel(logging.WARNING)


class TelegramApiError(ChannelError):
    """The Bot API answered ``ok: false`` (or could not be reached: ``code`` None)."""

    def __init__(
        self, method: str, description: str, *, code: int | None, retry_after: float | None = None
    ) -> None:
        super().__init__(f"Telegram {method}: {description}", channel="telegram")
        self.method = method
        self.code = code
        self.description = description
        self.retry_after = retry_after


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
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            try:
                if files:
                    data = {
                        k: v if isinstance(v, str) else _json(v)
                        for k, v in (params or {}).items()
                        if v is not None
                    }
                    response = await self._client.post(
                        url, data=data, files=files, timeout=timeout_s or REQUEST_TIMEOUT_S
                    )
                else:
                    response = await self._client.post(
                        url,
                        json={k: v for k, v in (params or {}).items() if v is not None},
                        timeout=timeout_s or REQUEST_TIMEOUT_S,
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
            retry_after = (body.get("parameters") or {}).get("retry_after")
            error = TelegramApiError(
                method,
                str(body.get("description") or "error"),
                code=body.get("error_code") or response.status_code,
                retry_after=float(retry_after) if retry_after is not None else None,
            )
            if (
                error.code == 429
                and attempt < RATE_LIMIT_RETRIES
                and (error.retry_after or 0) <= MAX_RETRY_AFTER_S
            ):
                log.info("Telegram %s rate-limited; retrying in %ss", method, error.retry_after)
                await asyncio.sleep(error.retry_after or 1.0)
                continue
            raise error
        raise AssertionError("unreachable")

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


def _json(value: Any) -> str:
    import json

    return json.dumps(value)
