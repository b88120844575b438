"""What the channel protocol tests share: a wired host, waiting for a state, reading session rows."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from nanoclaw.host import Host, build_host
from nanoclaw.settings import Settings
from tests.helpers import make_agent, wire_chat


@contextlib.asynccontextmanager
async def wired_host(
    settings: Settings,
    *,
    channel: str,
    connected: Callable[[Host], Awaitable[object]],
    direct: Iterable[str],
    groups: Iterable[str],
) -> AsyncIterator[Host]:
    """A started host whose channel is connected, with agent Andy wired to each ``direct`` chat
    and, answering mentions only, to each group chat; stopped on exit."""
    instance = build_host(settings)  # the registry builds the adapter
    await instance.start()
    try:
        await connected(instance)
        andy = make_agent(instance.repo, "Andy")
        for chat in direct:
            wire_chat(instance.repo, andy, chat, channel=channel)
        for chat in groups:
            wire_chat(
                instance.repo,
                andy,
                chat,
                channel=channel,
                is_group=True,
                engage_mode="mention",
                engage_pattern=None,
            )
        yield instance
    finally:
        await instance.stop()


async def until(predicate: Callable[[], Any], what: str, within_s: float = 20.0) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        value = predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def inbound_rows(host: Host) -> list[dict[str, Any]]:
    """Every ``messages_in`` row of every session, content decoded, oldest first."""
    found: list[dict[str, Any]] = []
    for session in host.repo.sessions(active_only=False):
        path = host.sessions.layout(session).inbound_db
        if not path.exists():
            continue
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            conn.row_factory = sqlite3.Row
            for r in conn.execute("SELECT * FROM messages_in ORDER BY seq"):
                row = dict(r)
                row["content"] = json.loads(row["content"])
                row["session_id"] = session.id
                found.append(row)
        except sqlite3.OperationalError:
            continue  # a session DB still being created: no rows yet
        finally:
            conn.close()
    return found


def deliveries(host: Host) -> list[dict[str, Any]]:
    """Every ``delivered`` row (status, attempts, error) of every session."""
    found: list[dict[str, Any]] = []
    for session in host.repo.sessions(active_only=False):
        path = host.sessions.layout(session).inbound_db
        if not path.exists():
            continue
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            conn.row_factory = sqlite3.Row
            found += [dict(r) for r in conn.execute("SELECT * FROM delivered")]
        except sqlite3.OperationalError:
            continue  # a session DB still being created: nothing delivered yet
        finally:
            conn.close()
    return found


def user_rows(host: Host) -> list[dict[str, Any]]:
    """Inbound rows that came from a chat (not host notices to the agent)."""
    return [r for r in inbound_rows(host) if r["channel_type"] not in (None, "agent")]
