"""Fixtures for the Claude agent: a fake Messages API and a host whose agents use it."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from nanoclaw.channels.cli.protocol import encode
from nanoclaw.contract.layout import SessionLayout
from nanoclaw.db.models import AgentGroup, ContainerConfig
from nanoclaw.host import Host, build_host
from nanoclaw.settings import Settings
from tests.fakes.anthropic_server import FakeAnthropic
from tests.helpers import make_agent, wire_chat

FAKE_API_KEY = "sk-ant-test-not-a-real-key"


@pytest.fixture
async def agent_host(settings: Settings, fake_api: FakeAnthropic) -> AsyncIterator[Host]:
    # The runner reaches the fake through the host's credential proxy, which adds this key.
    settings.anthropic_api_key = SecretStr(FAKE_API_KEY)
    settings.anthropic_base_url = fake_api.base_url
    host = build_host(settings)
    await host.start()
    try:
        yield host
    finally:
        await host.stop()


def claude_agent(
    host: Host, name: str = "Andy", chat: str = "local", **config: object
) -> AgentGroup:
    """An agent group on the anthropic provider, wired to a CLI chat."""
    agent = make_agent(host.repo, name)
    with host.db.session() as s:
        cfg = s.get(ContainerConfig, agent.id)
        assert cfg is not None
        cfg.provider = "anthropic"
        cfg.model = "claude-sonnet-4-5"
        for key, value in config.items():
            setattr(cfg, key, value)
    wire_chat(host.repo, agent, chat)
    return agent


class ChatListener:
    """A second CLI client subscribed to a chat: sees every frame delivered there, mid-turn."""

    def __init__(self, socket_path: Path, chat: str = "local") -> None:
        self.socket_path = socket_path
        self.chat = chat
        self.frames: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._arrived = asyncio.Event()

    async def __aenter__(self) -> ChatListener:
        reader, writer = await asyncio.open_unix_connection(str(self.socket_path))
        self._writer = writer
        writer.write(encode({"type": "hello", "chat": self.chat}))
        await writer.drain()

        async def read() -> None:
            while line := await reader.readline():
                self.frames.append(json.loads(line))
                self._arrived.set()

        self._task = asyncio.create_task(read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None and self._writer is not None
        self._task.cancel()
        self._writer.close()

    async def wait_for(self, match: Any, timeout_s: float = 20.0) -> dict[str, Any]:
        async def until() -> dict[str, Any]:
            while True:
                for frame in self.frames:
                    if match(frame):
                        return frame
                self._arrived.clear()
                await self._arrived.wait()

        return await asyncio.wait_for(until(), timeout_s)

    async def answer(self, question_id: str, value: str, sender: str = "alice") -> None:
        assert self._writer is not None
        self._writer.write(
            encode(
                {
                    "type": "action",
                    "question_id": question_id,
                    "value": value,
                    "sender": sender,
                    "id": "a1",
                }
            )
        )
        await self._writer.drain()


def session_layout(host: Host, agent: AgentGroup) -> SessionLayout:
    (session,) = [s for s in host.repo.sessions() if s.agent_group_id == agent.id]
    return host.sessions.layout(session)


def inbound_rows(layout: SessionLayout, where: str = "1=1") -> list[dict[str, Any]]:
    conn = sqlite3.connect(f"file:{layout.inbound_db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute(f"SELECT * FROM messages_in WHERE {where} ORDER BY seq").fetchall()
    finally:
        conn.close()
    return [dict(r) for r in rows]


def outbound_query(layout: SessionLayout, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{layout.outbound_db}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def make_owner(host: Host, user: str = "cli:alice") -> None:
    host.repo.upsert_user(user, kind="cli", display_name=None)
    host.repo.grant_role(user, "owner", granted_by=None)


async def eventually(check: Any, timeout_s: float = 10.0) -> Any:
    """Await until ``check()`` returns something truthy (a condition, not a fixed sleep)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
