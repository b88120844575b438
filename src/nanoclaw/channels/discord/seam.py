"""Where discord.py talks to: its REST base (``Route.BASE``) and gateway URL, set process-wide.

discord.py builds every REST URL from the class attribute ``discord.http.Route.BASE`` and opens
the gateway at ``DiscordWebSocket.DEFAULT_GATEWAY``; both are global to the process. The adapter
points REST at ``discord_api_base_url`` and the gateway at what ``GET /gateway/bot`` answers
there, as Discord asks clients to do (Discord API docs: Gateway › Get Gateway Bot). One
Discord bot per process, so setting them is safe; ``DEFAULT_API_BASE`` restores the default.
"""

from __future__ import annotations

import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

DEFAULT_API_BASE = "https://discord.com/api/v10"


def point_rest_at(api_base_url: str) -> None:
    Route.BASE = api_base_url.rstrip("/")


def point_gateway_at(gateway_url: str) -> None:
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)
