"""Task pre-check scripts inside real sandboxes (Docker and bubblewrap): bash runs in the sandbox,
and the fake Messages API's request count shows whether a model turn ran."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import SecretStr

from nanoclaw.host import Host, build_host
from tests.fakes.anthropic_server import FakeAnthropic
from tests.task_script_scenarios import (
    scenario_failures_skip_and_the_third_tells_the_chat,
    scenario_false_skips_the_turn,
    scenario_true_carries_the_data,
)

KEY = "sk-ant-e2e-not-a-real-key"


@pytest.fixture
async def claude_host(make_settings: Any, fake_api: FakeAnthropic) -> AsyncIterator[Host]:
    settings = make_settings(anthropic_api_key=SecretStr(KEY), anthropic_base_url=fake_api.base_url)
    host = build_host(settings)
    await host.start()
    try:
        yield host
    finally:
        await host.stop()


async def test_false_skips_the_model_turn_in_the_sandbox(
    claude_host: Host, fake_api: FakeAnthropic
) -> None:
    await scenario_false_skips_the_turn(claude_host, fake_api)


async def test_true_carries_the_data_in_the_sandbox(
    claude_host: Host, fake_api: FakeAnthropic
) -> None:
    await scenario_true_carries_the_data(claude_host, fake_api)


async def test_failures_are_counted_in_the_sandbox(
    claude_host: Host, fake_api: FakeAnthropic
) -> None:
    reasons = await scenario_failures_skip_and_the_third_tells_the_chat(claude_host, fake_api)
    assert all("exited with code 3" in r for r in reasons)
