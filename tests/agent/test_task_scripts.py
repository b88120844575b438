"""Task pre-check scripts in the process runtime: real bash, the fake model's request count as proof."""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import timedelta

from nanoclaw.contract.timeutil import to_iso, utc_now
from nanoclaw.host import Host
from nanoclaw.sessions.store import InboundMessage
from tests.agent.conftest import ChatListener
from tests.crash.harness import NANOCLAW, host_env
from tests.fakes.anthropic_server import FakeAnthropic
from tests.task_script_scenarios import (
    FAILING_SCRIPT,
    scenario_failures_skip_and_the_third_tells_the_chat,
    scenario_false_skips_the_turn,
    scenario_true_carries_the_data,
)


async def test_wake_agent_false_completes_the_occurrence_without_a_model_request(
    agent_host: Host, fake_api: FakeAnthropic
) -> None:
    await scenario_false_skips_the_turn(agent_host, fake_api)


async def test_wake_agent_true_puts_the_script_data_in_the_prompt(
    agent_host: Host, fake_api: FakeAnthropic
) -> None:
    async with ChatListener(agent_host.settings.cli_socket) as chat:
        await scenario_true_carries_the_data(agent_host, fake_api)
        await chat.wait_for(lambda f: f.get("text") == "You have 3 new mails.")


async def test_three_failures_in_a_row_tell_the_chat_and_tasks_list_shows_why(
    agent_host: Host, fake_api: FakeAnthropic
) -> None:
    async with ChatListener(agent_host.settings.cli_socket) as chat:
        reasons = await scenario_failures_skip_and_the_third_tells_the_chat(agent_host, fake_api)
        notice = await chat.wait_for(lambda f: "failed 3 times in a row" in str(f.get("text")))
    assert all("exited with code 3: broken checker" in r for r in reasons)
    assert "task-bad" in notice["text"] and "broken checker" in notice["text"]
    # The next occurrence of the series carries the reason, and the CLI shows it.
    (session,) = agent_host.repo.sessions()
    agent_host.sessions.store.insert_messages(
        agent_host.sessions.layout(session),
        [
            InboundMessage(
                id="task-bad-next",
                kind="task",
                content={"prompt": "summarise my inbox", "script": FAILING_SCRIPT},
                series_id="task-bad",
                process_after=to_iso(utc_now() + timedelta(hours=1)),
            )
        ],
    )
    listed = await asyncio.to_thread(
        subprocess.run,
        [NANOCLAW, "tasks", "list", "--all", "--json"],
        env=host_env(agent_host.settings, COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = {r["id"]: r for r in json.loads(listed.stdout)}
    assert "3 in a row" in rows["task-bad-3"]["last_script"]
    assert "broken checker" in rows["task-bad-3"]["last_script"]
    assert rows["task-bad-1"]["last_script"].startswith("failed at ")
