"""The ``nanoclaw`` commands as a user runs them: separate processes, real signals, exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.chat_client import ChatClient

NANOCLAW = [sys.executable, "-m", "nanoclaw.cli"]


@pytest.fixture
def env(tmp_path: Path, short_dir: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("NANOCLAW_", "ANTHROPIC_"))}
    base.update(
        NANOCLAW_ENV_FILE="",
        NANOCLAW_DATA_DIR=str(tmp_path / "data"),
        NANOCLAW_GROUPS_DIR=str(tmp_path / "groups"),
        NANOCLAW_LOGS_DIR=str(tmp_path / "logs"),
        NANOCLAW_CLI_SOCKET_PATH=str(short_dir / "cli.sock"),
        NANOCLAW_RUNTIME="process",
        NANOCLAW_ALLOW_PROCESS_RUNTIME="1",
        NANOCLAW_TIMEZONE="UTC",
    )
    return base


def nanoclaw(
    env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NANOCLAW, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@contextmanager
def host_process(env: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``nanoclaw init`` then ``nanoclaw run`` in a child process, up once its socket exists."""
    assert nanoclaw(env, "init", "--agent-name", "Robin").returncode == 0
    proc = subprocess.Popen([*NANOCLAW, "run", "--log-file", str(tmp_path / "host.log")], env=env)
    socket_path = Path(env["NANOCLAW_CLI_SOCKET_PATH"])
    deadline = time.monotonic() + 30
    while not socket_path.exists():
        assert proc.poll() is None, (tmp_path / "host.log").read_text()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def running_host(env: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    with host_process(env, tmp_path) as proc:
        yield proc


def test_init_is_idempotent_and_says_the_mock_is_in_use(
    env: dict[str, str], tmp_path: Path
) -> None:
    first = nanoclaw(env, "init", "--agent-name", "Robin")
    assert first.returncode == 0, first.stderr
    assert "Created agent Robin" in first.stdout and "mock model" in first.stdout
    assert (tmp_path / "groups" / "robin" / "CLAUDE.md").read_text().startswith("# Robin")
    second = nanoclaw(env, "init")
    assert second.returncode == 0 and "Using agent Robin" in second.stdout
    status = json.loads(nanoclaw(env, "status", "--json").stdout)
    assert [g["name"] for g in status["agent_groups"]] == ["Robin"]
    assert [w["chat"] for w in status["wirings"]] == ["cli/local"]
    assert status["provider"] == "mock" and "no API key" in status["provider_note"]
    (agent,) = json.loads(nanoclaw(env, "agents", "list", "--json").stdout)
    assert agent["admin_scope"] == "global"  # the owner's DM agent (upstream §8)


def test_chat_once_prints_the_reply_and_exits_zero(
    env: dict[str, str], running_host: subprocess.Popen[bytes]
) -> None:
    result = nanoclaw(env, "chat", "-m", "hello", "--timeout", "30")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Robin (mock model, no API key configured) heard: hello"
    status = json.loads(nanoclaw(env, "status", "--json").stdout)
    assert status["host_running"] is True
    assert [s["runner"] for s in status["sessions"]] == ["running"]


def test_named_chats_and_senders(
    env: dict[str, str], running_host: subprocess.Popen[bytes]
) -> None:
    unwired = nanoclaw(env, "chat", "--chat", "work", "-m", "hi", "--timeout", "10")
    assert unwired.returncode == 1 and "not wired" in unwired.stderr
    assert nanoclaw(env, "wire", "work", "Robin").returncode == 0
    wired = nanoclaw(env, "chat", "--chat", "work", "--as", "sam", "-m", "hi from sam", "--json")
    assert wired.returncode == 0, wired.stderr
    (reply,) = [json.loads(line) for line in wired.stdout.splitlines()]
    assert reply["chat"] == "work" and reply["text"].endswith("hi from sam")
    bad = nanoclaw(env, "chat", "--chat", "../etc", "-m", "x")
    assert bad.returncode == 2 and "invalid chat name" in bad.stderr


def test_wire_refuses_bad_options_before_writing_anything(
    env: dict[str, str], tmp_path: Path
) -> None:
    assert nanoclaw(env, "init", "--agent-name", "Robin").returncode == 0
    bad_regex = nanoclaw(env, "wire", "lab", "Robin", "--pattern", "(unclosed")
    assert bad_regex.returncode == 2 and "not a valid regular expression" in bad_regex.stderr
    bad_mode = nanoclaw(env, "wire", "lab", "Robin", "--engage", "sometimes")
    assert bad_mode.returncode == 2 and "unknown engage mode" in bad_mode.stderr
    status = json.loads(nanoclaw(env, "status", "--json").stdout)
    assert [w["chat"] for w in status["wirings"]] == ["cli/local"]
    with sqlite3.connect(tmp_path / "data" / "nanoclaw.db") as conn:
        chats = [p for (p,) in conn.execute("SELECT platform_id FROM messaging_groups")]
    assert chats == ["local"]  # not even the chat's record was created
    missing = nanoclaw(env, "wire", "lab", "Nobody")
    assert missing.returncode == 5 and "not found" in missing.stderr


def test_a_failed_message_is_listed_and_answered_once_retried(
    env: dict[str, str], tmp_path: Path
) -> None:
    env.update(NANOCLAW_MAX_TRIES="1", NANOCLAW_RETRY_BACKOFF_BASE_S="0.1")
    with host_process(env, tmp_path):
        fault = tmp_path / "fault"
        fault.touch()
        text = f"!crash-while {fault}"
        first = nanoclaw(env, "chat", "-m", text, "--timeout", "30")
        assert "could not process your message" in first.stdout, first.stdout + first.stderr
        listed = nanoclaw(env, "messages", "failed", "--json")
        assert listed.returncode == 0, listed.stderr
        (failed,) = json.loads(listed.stdout)
        assert (failed["text"], failed["tries"], failed["agent"]) == (text, 1, "Robin")
        assert nanoclaw(env, "messages", "retry", "no-such-id").returncode == 5
        fault.unlink()  # the operator repairs the cause, then retries

        async def retried() -> str:
            async with ChatClient(Path(env["NANOCLAW_CLI_SOCKET_PATH"]), "local", "me") as me:
                again = nanoclaw(env, "messages", "retry", failed["id"])
                assert again.returncode == 0, again.stderr
                reply = await me.reply_containing(f"heard: {text}", within_s=20)
                return str(reply["text"])

        assert asyncio.run(retried()).endswith(f"heard: {text}")
        assert json.loads(nanoclaw(env, "messages", "failed", "--json").stdout) == []


def test_no_reply_within_the_timeout_exits_non_zero(
    env: dict[str, str], running_host: subprocess.Popen[bytes]
) -> None:
    result = nanoclaw(env, "chat", "-m", "!sleep 5", "--timeout", "1")
    assert result.returncode == 4 and "no reply within 1 s" in result.stderr


def test_sigterm_stops_the_host_cleanly_and_chat_then_says_so(
    env: dict[str, str], running_host: subprocess.Popen[bytes]
) -> None:
    assert nanoclaw(env, "chat", "-m", "warm up").returncode == 0
    running_host.send_signal(signal.SIGTERM)
    assert running_host.wait(timeout=20) == 0
    assert not Path(env["NANOCLAW_CLI_SOCKET_PATH"]).exists()
    status = json.loads(nanoclaw(env, "status", "--json").stdout)
    assert status["host_running"] is False
    assert [s["runner"] for s in status["sessions"]] == ["stopped"]
    down = nanoclaw(env, "chat", "-m", "anyone?")
    assert down.returncode == 3 and "not running" in down.stderr
