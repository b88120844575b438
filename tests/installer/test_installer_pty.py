"""``bash nanoclaw.sh`` run as a new user would: in a pseudo-terminal, against a fake endpoint."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pexpect
import pytest

from nanoclaw.service.pidfile import PidFile
from nanoclaw.setup.e2e import CHECK_PREFIX, CHECK_TEXT
from tests.conftest import REPO_ROOT
from tests.fakes.anthropic_server import DEFAULT_TEXT
from tests.installer.conftest import Install
from tests.installer.fake_endpoint import fake_endpoint

pytestmark = pytest.mark.timeout(400)
GOOD = "gw-good-token-1234567890"


def spawn(install: Install, *args: str) -> pexpect.spawn:
    child = pexpect.spawn(
        "bash",
        [str(REPO_ROOT / "nanoclaw.sh"), *args],
        cwd=str(REPO_ROOT),
        env=install.env,
        encoding="utf-8",
        timeout=180,
        dimensions=(50, 200),
    )
    child.logfile_read = sys.stdout  # visible with pytest -s when something hangs
    return child


def choose_endpoint(child: pexpect.spawn, url: str | None, token: str) -> None:
    child.expect("How should your assistant reach a model")
    child.expect(r"Choose 1-3 \[1\]: ")
    child.sendline("2")
    child.expect("Base URL")
    child.expect(": ")
    child.sendline(url or "")  # empty: keep the URL shown as the default
    child.expect(r"Token for that endpoint \(hidden\): ")
    child.sendline(token)


def no_trace_of_the_check(install: Install) -> None:
    groups = [p.name for p in install.groups.iterdir()]
    assert not any(name.startswith(CHECK_PREFIX) for name in groups)
    for path in (install.data / "sessions").rglob("*"):
        if path.is_file():
            assert CHECK_TEXT.encode() not in path.read_bytes(), path
    db = sqlite3.connect(install.data / "nanoclaw.db")
    try:
        names = [r[0] for r in db.execute("SELECT folder FROM agent_groups")]
        chats = [r[0] for r in db.execute("SELECT platform_id FROM messaging_groups")]
    finally:
        db.close()
    assert not any(n.startswith(CHECK_PREFIX) for n in names + chats)


def test_custom_endpoint_time_zone_owner_terminal_then_chat(install: Install) -> None:
    with fake_endpoint(accept_tokens={GOOD}) as fake:
        child = spawn(install)
        choose_endpoint(child, fake.base_url, GOOD)
        child.expect(r"Your time zone is Europe/Berlin\. Is that right\? \[Y/n\]: ")
        child.sendline("y")
        child.expect(r"Your assistant's name \[Andy\]: ")
        child.sendline("Nano")
        child.expect(r"Your name \(how your assistant will address you\)")
        child.sendline("Alice")
        child.expect("NOT survive a reboot")
        child.expect("answered")  # the credential check, one real request
        child.expect("a scratch agent answered")
        child.expect("Where do you want to talk to your assistant")
        for n, name in enumerate(("terminal", "Telegram", "Slack", "Discord", "WhatsApp"), 1):
            child.expect(rf"{n}\) [^\r\n]*{name}")
        child.expect(r"Choose 1-5 \[1\]: ")
        child.sendline("1")
        child.expect("Opening a chat")
        child.expect("Ctrl-D")
        child.sendline("hello from the test")
        child.expect_exact(DEFAULT_TEXT)
        child.sendeof()
        child.expect(pexpect.EOF)
        # every request went through the proxy with the gateway token, never anything else
        assert all(r.headers.get("Authorization") == f"Bearer {GOOD}" for r in fake.requests)
        assert any("hello from the test" in r.all_text() for r in fake.requests)
    env = install.env_file.read_text()
    assert f"NANOCLAW_ANTHROPIC_BASE_URL={fake.base_url}" in env
    assert "NANOCLAW_TIMEZONE=Europe/Berlin" in env
    assert install.env_file.stat().st_mode & 0o777 == 0o600
    db = sqlite3.connect(install.data / "nanoclaw.db")
    try:
        owner = db.execute(
            "SELECT u.display_name FROM users u JOIN user_roles r ON r.user_id = u.id "
            "WHERE r.role = 'owner'"
        ).fetchall()
    finally:
        db.close()
    assert owner == [("Alice",)]
    assert "Alice" in (install.groups / "nano" / "CLAUDE.local.md").read_text()
    no_trace_of_the_check(install)
    log = (install.logs / "setup.log").read_text()
    assert "model-check [" in log and "end-to-end [" in log and "setup completed" in log
    status = json.loads(install.nanoclaw("status", "--json").stdout)
    assert status["running_host"]["base_url"] == fake.base_url
    assert status["running_host"]["settings_current"] is True


def test_a_wrong_key_first_gets_the_retry_prompt(install: Install) -> None:
    install.env["TZ"] = "UTC"
    with fake_endpoint(accept_tokens={GOOD}) as fake:
        child = spawn(install, "--owner-name", "Bob", "--channel", "terminal", "--no-chat")
        choose_endpoint(child, fake.base_url, "wrong-token-0000000000")
        child.expect(r"This machine says UTC")
        child.expect(r"Your time zone \[UTC\]: ")
        child.sendline("America/New_York")
        child.expect(r"Your assistant's name \[Andy\]: ")
        child.sendline("")
        child.expect(r"rejected the credential \(HTTP 401")
        child.expect(r"Enter the credential again\? \[Y/n\]: ")
        child.sendline("y")
        choose_endpoint(child, None, GOOD)  # the URL is offered again as the default
        child.expect("answered")
        child.expect("a scratch agent answered")
        child.expect("NanoClaw is set up and running")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
    assert "NANOCLAW_TIMEZONE=America/New_York" in install.env_file.read_text()
    assert (
        GOOD in install.env_file.read_text() and "wrong-token" not in install.env_file.read_text()
    )


def test_without_a_terminal_a_401_endpoint_fails_naming_the_cause(install: Install) -> None:
    with fake_endpoint(accept_tokens={GOOD}) as fake:
        done = install.script(
            "--base-url",
            fake.base_url,
            "--auth-token",
            "wrong-token-0000000000",
            "--timezone",
            "UTC",
        )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "rejected the credential (HTTP 401" in out
    assert "Setup failed at step 'model-check'" in out
    assert "wrong-token-0000000000" not in out  # never printed
    log = (install.logs / "setup.log").read_text()
    assert "model-check [" in log and "→ failed" in log and "setup failed at model-check" in log
    # the host keeps running with the stored settings; the test's teardown stops it
    assert PidFile(install.data / "supervisor.pid").alive() is not None


def test_without_a_terminal_an_unreachable_endpoint_is_named(install: Install) -> None:
    done = install.script(
        "--base-url",
        "http://127.0.0.1:9",
        "--auth-token",
        GOOD,
        "--timezone",
        "UTC",
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1 and "could not be reached (network)" in out, out


def test_help_and_usage(install: Install) -> None:
    done = install.script("--help")
    assert done.returncode == 0 and "--base-url URL" in done.stdout and "time zone" in done.stdout
    missing = install.script("--agent-name")
    assert missing.returncode == 2 and "--agent-name needs a value" in missing.stderr
    assert "--help" in missing.stderr
    unknown = install.script("--frobnicate")
    assert unknown.returncode == 2 and "unknown option --frobnicate" in unknown.stderr
    version = install.nanoclaw("--version")
    assert version.returncode == 0 and version.stdout.startswith("nanoclaw ")
    assert (
        not (install.logs / "setup.log").exists()
        or "started" not in (install.logs / "setup.log").read_text()
    )  # usage errors stop before anything runs
    assert not Path(install.data / "host.pid").exists()
