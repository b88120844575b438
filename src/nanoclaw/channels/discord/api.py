"""Checking a Discord bot token without the gateway: who the bot is, and whether it may read text.

Used by ``nanoclaw channels add discord``, setup and ``doctor``: ``GET /users/@me`` (Discord API
docs: Users › Get Current User) names the bot, ``GET /applications/@me`` (Application › Get
Current Application) carries the flags that say whether the Message Content intent is on.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from nanoclaw.channels.discord.intents import has_message_content
from nanoclaw.errors import ChannelError

CHECK_TIMEOUT_S = 15.0


class DiscordTokenError(ChannelError):
    """Discord refused the token, or could not be asked."""

    def __init__(self, message: str, *, status: int | None) -> None:
        super().__init__(message, channel="discord")
        self.status = status


@dataclass(frozen=True)
class BotCheck:
    bot_id: str
    username: str
    application_id: str
    message_content: bool  # the app's flags carry the Message Content intent


async def check_bot(
    *, token: str, api_base_url: str, client: httpx.AsyncClient | None = None
) -> BotCheck:
    own = client is None
    http = client or httpx.AsyncClient(timeout=CHECK_TIMEOUT_S)
    headers = {"Authorization": f"Bot {token}"}
    base = api_base_url.rstrip("/")
    try:
        me = await http.get(f"{base}/users/@me", headers=headers)
        if me.status_code == 401:
            raise DiscordTokenError("Discord rejected the token (401 Unauthorized)", status=401)
        me.raise_for_status()
        app = await http.get(f"{base}/applications/@me", headers=headers)
        app.raise_for_status()
    except httpx.HTTPStatusError as exc:
        raise DiscordTokenError(
            f"Discord answered {exc.response.status_code} to {exc.request.url.path}",
            status=exc.response.status_code,
        ) from None
    except httpx.HTTPError as exc:
        raise DiscordTokenError(f"Discord could not be reached: {exc}", status=None) from None
    finally:
        if own:
            await http.aclose()
    user = me.json()
    application = app.json()
    return BotCheck(
        bot_id=str(user.get("id") or ""),
        username=str(user.get("username") or ""),
        application_id=str(application.get("id") or ""),
        message_content=has_message_content(int(application.get("flags") or 0)),
    )
