"""Fixtures for the Claude agent: a fake Messages API and a host whose agents use it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from nanoclaw.db.models import AgentGroup, ContainerConfig
from nanoclaw.host import Host
from nanoclaw.settings import Settings
from tests.fakes.anthropic_server import FakeAnthropic
from tests.helpers import make_agent, wire_chat

FAKE_API_KEY = "sk-ant-test-not-a-real-key"


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeAnthropic]:
    fake = FakeAnthropic()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def agent_host(settings: Settings, fake_api: FakeAnthropic) -> AsyncIterator[Host]:
    # The runner reaches the fake through the host's credential proxy, which adds this key.
    settings.anthropic_api_key = SecretStr(FAKE_API_KEY)
    settings.anthropic_base_url = fake_api.base_url
    host = Host(settings=settings)
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
