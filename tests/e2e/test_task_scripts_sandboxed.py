"""Task pre-check scripts inside real sandboxes (Docker and bubblewrap): bash runs in the sandbox,
and the fake Messages API's request count shows whether a model turn ran."""

from __future__ import annotations

from nanoclaw.host import Host
from tests.fakes.anthropic_server import FakeAnthropic
from tests.task_script_scenarios import (
    scenario_failures_skip_and_the_third_tells_the_chat,
    scenario_false_skips_the_turn,
    scenario_true_carries_the_data,
)


async def test_false_skips_the_model_turn_in_the_sandbox(
    proxied_host: Host, fake_api: FakeAnthropic
) -> None:
    await scenario_false_skips_the_turn(proxied_host, fake_api)


async def test_true_carries_the_data_in_the_sandbox(
    proxied_host: Host, fake_api: FakeAnthropic
) -> None:
    await scenario_true_carries_the_data(proxied_host, fake_api)


async def test_failures_are_counted_in_the_sandbox(
    proxied_host: Host, fake_api: FakeAnthropic
) -> None:
    reasons = await scenario_failures_skip_and_the_third_tells_the_chat(proxied_host, fake_api)
    assert all("exited with code 3" in r for r in reasons)
