"""Invariant 5 end to end: the model key stays on the host; the sandbox reaches the model anyway.

A runner with the anthropic provider answers through the credential proxy (Unix socket, no
network) from a fake Messages API that sees the real key. Then we look for the key everywhere
a sandbox could see it: the container's configuration, every process's environment and argv
from inside (``/proc/1/environ`` included), and every readable file in the sandbox.
Without a key, no sandbox starts and the message stays pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from nanoclaw.host import build_host
from tests.e2e.test_sandbox_runtimes import WAIT_S, live_runners
from tests.fakes.anthropic_server import FakeAnthropic, reply
from tests.helpers import make_agent, say, texts, wait_for_state, wire_chat

# Runs inside the sandbox: report every place the secret appears, and what /proc/1/environ holds.
INSPECT = r"""
import os, sys, json
secret = (sys.argv[1] + sys.argv[2]).encode()  # never whole in our own argv
hits = []
for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
    for name in ("environ", "cmdline"):
        try:
            if secret in open(f"/proc/{pid}/{name}", "rb").read():
                hits.append(f"/proc/{pid}/{name}")
        except OSError:
            pass
seen = 0
TOPS = ("/session", "/workspace", "/home", "/tmp", "/run", "/app", "/etc", "/opt", "/usr/local")
for top in TOPS:
    for root, dirs, files in os.walk(top):
        for name in files:
            path = os.path.join(root, name)
            try:
                if os.path.islink(path) or not os.path.isfile(path):
                    continue
                with open(path, "rb") as fh:
                    seen += 1
                    if secret in fh.read(4 * 1024 * 1024):
                        hits.append(path)
            except OSError:
                pass
net = "none"
try:
    import socket
    socket.create_connection(("1.1.1.1", 53), timeout=1).close()
    net = "open"
except OSError:
    pass
pid1 = open("/proc/1/environ", "rb").read().decode(errors="replace")
print(json.dumps({"hits": hits, "files": seen, "pid1": pid1, "net": net}))
"""


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeAnthropic]:
    fake = FakeAnthropic()
    await fake.start()
    yield fake
    await fake.stop()


def halves(secret: str) -> tuple[str, str]:
    return secret[: len(secret) // 2], secret[len(secret) // 2 :]


def inspect_docker(client: Any, runner_id: str, secret: str) -> tuple[dict[str, Any], str]:
    container = client.containers.get(runner_id)
    config = json.dumps(container.attrs)
    result = container.exec_run(["/opt/venv/bin/python", "-c", INSPECT, *halves(secret)])
    assert result.exit_code == 0, result.output
    return json.loads(result.output), config


def inspect_bwrap(runner_id: str, secret: str) -> tuple[dict[str, Any], str]:
    """Enter the sandbox's namespaces (as its own unprivileged user) and look from inside."""
    bwrap_pid = int(runner_id.removeprefix("bwrap-"))
    children = Path(f"/proc/{bwrap_pid}/task/{bwrap_pid}/children").read_text().split()
    inside = int(children[0])  # bwrap's child is pid 1 of the sandbox
    host_side = ""
    for pid in [bwrap_pid, inside, *_descendants(inside)]:
        with contextlib.suppress(OSError):
            host_side += Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
            host_side += Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    out = subprocess.run(
        [
            "nsenter",
            "-t",
            str(inside),
            "-U",
            "-m",
            "-p",
            "-n",
            "--preserve-credentials",
            "/usr/bin/python3",
            "-c",
            INSPECT,
            *halves(secret),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout), host_side


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                found += [int(child), *_descendants(int(child))]
    return found


async def test_no_secret_enters_the_sandbox_yet_the_model_answers(
    make_settings: Any, runtime_name: str, fake_api: FakeAnthropic, request: pytest.FixtureRequest
) -> None:
    secret = f"sk-ant-test-{secrets.token_hex(16)}"
    settings = make_settings(
        provider="anthropic",
        anthropic_api_key=SecretStr(secret),
        anthropic_base_url=fake_api.base_url,
    )
    host = build_host(settings)
    await host.start()
    try:
        wire_chat(host.repo, make_agent(host.repo, "Andy"), "local")
        fake_api.push(reply("answered through the proxy"))
        exchange = await say(settings.cli_socket, "hello", timeout=WAIT_S)
        assert texts(exchange) == ["answered through the proxy"]
        headers = {k.lower(): v for k, v in fake_api.requests[0].headers.items()}
        assert headers["x-api-key"] == secret  # the proxy added it on the host side
        [runner] = await live_runners(host)
        if runtime_name == "docker":
            client = request.getfixturevalue("docker_client")
            report, outside = await asyncio.to_thread(
                inspect_docker, client, runner.runner_id, secret
            )
        else:
            report, outside = await asyncio.to_thread(inspect_bwrap, runner.runner_id, secret)
        session = (await asyncio.to_thread(host.repo.sessions))[0]
        runner_json = host.sessions.layout(session).runner_config.read_text()
    finally:
        await host.stop()
    assert secret not in outside, "the secret is in the sandbox's configuration or host-side /proc"
    assert report["hits"] == [], f"the secret is visible inside the sandbox: {report['hits']}"
    assert report["files"] > 50  # the scan did read the sandbox's files
    # pid 1 is docker-init (with the container's env) or bwrap's reaper (started with PATH only).
    expected_pid1 = "HOME=/home/agent" if runtime_name == "docker" else "PATH=/usr/bin:/bin"
    assert expected_pid1 in report["pid1"] and secret not in report["pid1"]
    assert report["net"] == "none"
    config = json.loads(runner_json)
    assert config["model_token"].startswith("ncp-") and secret not in runner_json
    assert config["model_socket"] == "/run/nanoclaw/model.sock"


async def test_without_a_key_no_sandbox_starts_and_the_message_stays_pending(
    make_settings: Any, fake_api: FakeAnthropic
) -> None:
    from nanoclaw.channels.cli.client import NoReplyError

    host = build_host(make_settings(provider="anthropic", anthropic_base_url=fake_api.base_url))
    await host.start()
    try:
        wire_chat(host.repo, make_agent(host.repo, "Andy"), "local")
        with pytest.raises(NoReplyError):
            await say(host.settings.cli_socket, "hello", timeout=1.5)
        # The message was accepted into its session (a state, not a deadline) and stays pending.
        (session,) = await wait_for_state(lambda: host.repo.sessions())
        layout = host.sessions.layout(session)
        counts = await wait_for_state(lambda: host.reader.pending_counts(layout))
        assert await live_runners(host) == []
    finally:
        await host.stop()
    assert counts == {"pending": 1}
    assert fake_api.requests == []
