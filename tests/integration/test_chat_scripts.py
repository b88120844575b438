"""``nanoclaw chat`` for scripts: ``-m -`` from stdin, piped lines, ``--json`` and the exit codes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.integration.test_cli_commands import NANOCLAW, env, host_process, nanoclaw

__all__ = ["env"]
# Real host processes started (and restarted) per test: slow on a loaded 2-core machine.
pytestmark = pytest.mark.timeout(300)

MOCK = "(mock model, no API key configured) heard: "


def chat(env: dict[str, str], *args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NANOCLAW, "chat", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_m_dash_reads_a_long_message_from_stdin(env: dict[str, str], tmp_path: Path) -> None:
    long_text = "word " * 30_000  # 150,000 characters: more than an argv can carry
    with host_process(env, tmp_path):
        result = chat(env, "-m", "-", "--json", stdin=long_text)
        assert result.returncode == 0, result.stderr
        (reply,) = [json.loads(line) for line in result.stdout.splitlines()]
        assert reply["type"] == "reply" and reply["sender_name"] == "Robin"
        assert reply["text"].endswith(MOCK + long_text.strip())
        too_long = chat(env, "-m", "-", stdin="x" * 200_001)
        assert too_long.returncode == 2 and "longer than 200000" in too_long.stderr
        empty = chat(env, "-m", "-", stdin="\n")
        assert empty.returncode == 2 and "empty" in empty.stderr


def test_piped_lines_each_wait_for_their_turn_before_the_client_exits(
    env: dict[str, str], tmp_path: Path
) -> None:
    with host_process(env, tmp_path):
        result = chat(env, stdin="!sleep 1 first\n\nsecond\n")
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [
            f"Robin {MOCK}!sleep 1 first",
            f"Robin {MOCK}second",
        ]


def test_the_host_not_running_exits_3(env: dict[str, str]) -> None:
    result = chat(env, "-m", "hello", stdin="")
    assert result.returncode == 3 and "host is not running" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_message_that_ends_failed_exits_5_with_the_notice(
    env: dict[str, str], tmp_path: Path
) -> None:
    env.update(NANOCLAW_MAX_TRIES="1", NANOCLAW_RETRY_BACKOFF_BASE_S="0.1")
    with host_process(env, tmp_path):
        fault = tmp_path / "fault"
        fault.touch()
        result = nanoclaw(env, "chat", "-m", f"!crash-while {fault}", "--timeout", "60")
        assert result.returncode == 5, result.stdout + result.stderr
        assert "could not process your message" in result.stdout
        fault.unlink()
        fine = nanoclaw(env, "chat", "-m", "and now?", "--timeout", "60")
        assert fine.returncode == 0 and fine.stdout.strip().endswith(MOCK + "and now?")
