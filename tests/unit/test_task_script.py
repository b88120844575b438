"""``run_task_script``: real bash scripts, every way a pre-check can decide or fail."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from agent_runner.task_script import parse_decision, run_task_script


async def test_false_and_true_decisions_come_from_the_last_line(tmp_path: Path) -> None:
    no = await run_task_script("echo noise; echo '{\"wakeAgent\": false}'", cwd=tmp_path)
    assert (no.wake, no.error, no.outcome) == (False, None, "skipped")
    yes = await run_task_script(
        'echo \'{"wakeAgent": true, "data": {"n": 2}}\'; echo', cwd=tmp_path
    )
    assert (yes.wake, yes.data, yes.outcome) == (True, {"n": 2}, "woke")


async def test_the_script_runs_in_the_given_folder(tmp_path: Path) -> None:
    (tmp_path / "flag").write_text("x")
    found = await run_task_script(
        'test -f flag && echo \'{"wakeAgent": true, "data": "seen"}\'', cwd=tmp_path
    )
    assert found.data == "seen"


@pytest.mark.parametrize(
    ("script", "why"),
    [
        ("exit 4", "exited with code 4"),
        ("echo hello", "not JSON"),
        ("echo '{\"wake\": true}'", 'boolean "wakeAgent"'),
        ('echo \'{"wakeAgent": "yes"}\'', 'boolean "wakeAgent"'),
        ("true", "printed nothing"),
    ],
)
async def test_failures_and_malformed_output_skip_with_a_reason(
    tmp_path: Path, script: str, why: str
) -> None:
    outcome = await run_task_script(script, cwd=tmp_path)
    assert outcome.wake is False and outcome.outcome == "error"
    assert outcome.error is not None and why in outcome.error


async def test_a_hanging_script_is_killed_at_the_timeout(tmp_path: Path) -> None:
    outcome = await run_task_script("sleep 30 & wait", cwd=tmp_path, timeout_s=0.5)
    assert outcome.error == "the script timed out after 0.5 s"


async def test_output_over_the_cap_is_a_failure(tmp_path: Path) -> None:
    outcome = await run_task_script(
        "head -c 5000 /dev/zero; echo '{\"wakeAgent\": true}'",
        cwd=tmp_path,
        max_output_bytes=4096,
    )
    assert outcome.error == "the script printed more than 4096 bytes"


async def test_stderr_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="agent_runner.task_script")
    await run_task_script("echo diag >&2; echo '{\"wakeAgent\": false}'", cwd=tmp_path)
    assert "diag" in caplog.text


def test_parse_decision_ignores_trailing_blank_lines() -> None:
    assert parse_decision('{"wakeAgent": true}\n\n  \n').wake is True
