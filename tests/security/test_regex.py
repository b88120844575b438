"""User regexes cannot freeze the host: RE2 at set time and at match time, fail closed when stored.

Issue #10: ``nanoclaw wire … --pattern '(x+x+)+y'`` and a 40-character message blocked every chat
(Python's backtracking ``re`` takes ~2^40 steps). With RE2 the same patterns are legal and
linear; what RE2 refuses is rejected when set, with RE2's reason, and never matches when found
already stored. The measured match times are in ``benchmarks/results/regex.json``
(``benchmarks/regex_bench.py``), not asserted here.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from nanoclaw.admin.service import Actor
from nanoclaw.errors import ValidationError
from nanoclaw.host import Host
from nanoclaw.routing.engage import pattern_matches
from nanoclaw.routing.user_regex import UserPatternError, check_user_pattern
from tests.chat_client import ChatClient
from tests.helpers import make_agent, say, texts, wire_chat

CATASTROPHIC = ("(x+x+)+y", "(a+)+$")
# What RE2 refuses (no linear-time algorithm exists or the program is too big), with its reason.
REFUSED = {
    r"(\w)\1": "invalid escape sequence",
    "(?=x)": "invalid perl operator",
    "a{2000}": "invalid repetition size",
    "((((a{100}){100}){100}){100})": "invalid repetition size",
    "(unclosed": "missing )",
}
OWNER = "cli:olive"


@pytest.mark.parametrize("pattern", CATASTROPHIC)
def test_the_catastrophic_patterns_are_legal_and_answer_on_forty_characters(pattern: str) -> None:
    check_user_pattern(pattern)  # accepted: RE2 runs it in linear time
    assert not pattern_matches(pattern, "x" * 40 if "x" in pattern else "a" * 40 + "!")
    assert pattern_matches(pattern, "x" * 40 + "y" if "x" in pattern else "a" * 40)


@pytest.mark.parametrize(("pattern", "reason"), sorted(REFUSED.items()))
def test_a_pattern_re2_refuses_is_rejected_at_set_time_with_the_reason(
    pattern: str, reason: str
) -> None:
    with pytest.raises(UserPatternError) as refused:
        check_user_pattern(pattern)
    assert isinstance(refused.value, ValidationError) and refused.value.field == "pattern"
    assert reason in str(refused.value) and repr(pattern) in str(refused.value)


def test_a_stored_pattern_re2_refuses_never_engages_and_is_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stored = r"(\w)\1 stored-once"  # as if written before RE2: Python's re accepts it
    with caplog.at_level(logging.WARNING, logger="nanoclaw.routing.regex"):
        assert [pattern_matches(stored, "aa stored-once") for _ in range(3)] == [False] * 3
    warnings = [r for r in caplog.records if "stored-once" in r.getMessage()]
    assert len(warnings) == 1 and "refused by RE2" in warnings[0].getMessage()


def test_the_cli_refuses_it_with_exit_2_and_writes_nothing(tmp_path: Path, short_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NANOCLAW_", "ANTHROPIC_"))}
    env.update(
        NANOCLAW_ENV_FILE="",
        NANOCLAW_DATA_DIR=str(tmp_path / "data"),
        NANOCLAW_GROUPS_DIR=str(tmp_path / "groups"),
        NANOCLAW_LOGS_DIR=str(tmp_path / "logs"),
        NANOCLAW_CLI_SOCKET_PATH=str(short_dir / "cli.sock"),
        NANOCLAW_RUNTIME="process",
        NANOCLAW_ALLOW_PROCESS_RUNTIME="1",
    )

    def nanoclaw(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "nanoclaw.cli", *args], env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    assert nanoclaw("init", "--agent-name", "Robin").returncode == 0
    refused = nanoclaw("wire", "lab", "Robin", "--pattern", r"(\w)\1")
    assert refused.returncode == 2 and "invalid escape sequence" in " ".join(refused.stderr.split())
    accepted = nanoclaw("wire", "lab", "Robin", "--pattern", "(a+)+$")
    assert accepted.returncode == 0, accepted.stderr


async def test_chat_commands_and_agents_get_the_reason_too(host: Host) -> None:
    host.repo.upsert_user(OWNER, kind="cli", display_name="olive")
    host.repo.grant_role(OWNER, "owner", granted_by="test")
    andy = make_agent(host.repo, "Andy")
    wire_chat(host.repo, andy, "team")
    reply = texts(await say(host.settings.cli_socket, "/engage team Andy pattern (?=x)",
                            chat="ops", sender="olive"))  # fmt: skip
    assert any("invalid perl operator" in t for t in reply), reply
    admin = host.permissions.admin
    with pytest.raises(UserPatternError, match="invalid escape sequence"):
        admin.wire(Actor.operator(), admin.chat("cli/other", create=True), andy,
                   engage_mode="pattern", engage_pattern=r"(\w)\1")  # fmt: skip
    assert [(w.engage_pattern) for w in host.repo.wirings()] == ["."]  # nothing written


async def test_a_catastrophic_pattern_on_one_chat_does_not_stop_another_chat(host: Host) -> None:
    slow, fast = make_agent(host.repo, "Slow"), make_agent(host.repo, "Fast")
    wire_chat(host.repo, slow, "slow", engage_pattern="(x+x+)+y")
    wire_chat(host.repo, fast, "team")
    sock = host.settings.cli_socket
    async with ChatClient(sock, "slow", "bob") as bob, ChatClient(sock, "team", "carol") as carol:
        # the 40-character message that froze the host, then another chat's message at once
        await bob.say("x" * 40)
        await carol.say("are you there?")
        answered = await carol.reply_containing("heard: are you there?")
        # and the pattern still engages when it matches: its chat is served, in order
        await bob.say("x" * 40 + "y")
        served = await bob.reply_containing("heard: " + "x" * 40 + "y")
    assert answered["chat"] == "team" and served["chat"] == "slow"
    # the first message was routed and not engaged (no session holds it), the second was
    sessions = {s.agent_group_id: s for s in host.repo.sessions()}
    assert set(sessions) == {slow.id, fast.id}
    inbound = host.sessions.layout(sessions[slow.id]).inbound_db
    with sqlite3.connect(f"file:{inbound}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT content FROM messages_in WHERE kind = 'chat'").fetchall()
    assert [json.loads(c)["text"] for (c,) in rows] == ["x" * 40 + "y"]
