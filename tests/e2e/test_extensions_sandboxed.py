"""MCP servers and installed packages inside real sandboxes (Docker, bubblewrap), model via the proxy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from nanoclaw.admin.extensions import Extensions
from nanoclaw.admin.service import Actor
from nanoclaw.db.models import ContainerConfig
from nanoclaw.host import Host
from tests.e2e.test_sandbox_runtimes import WAIT_S, live_runners, until
from tests.fakes.anthropic_server import FakeAnthropic, reply, tool_call
from tests.helpers import make_agent, say, texts, wire_chat

ECHO_SERVER = Path(__file__).resolve().parents[1] / "fixtures" / "mcp" / "echo_server.py"


def _claude(host: Host, name: str = "Andy") -> Any:
    agent = make_agent(host.repo, name)
    with host.db.session() as s:
        cfg = s.get(ContainerConfig, agent.id)
        assert cfg is not None
        cfg.provider = "anthropic"
    wire_chat(host.repo, agent, "local")
    return agent


async def test_an_mcp_server_in_the_agents_folder_runs_inside_the_sandbox(
    proxied_host: Host, runtime_name: str, fake_api: FakeAnthropic
) -> None:
    host = proxied_host
    settings = host.settings
    agent = _claude(host)
    folder = settings.groups_path / agent.folder
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ECHO_SERVER, folder / "echo_server.py")  # the server's code, in the sandbox
    Extensions(repo=host.repo, groups_path=settings.groups_path).add_mcp_server(
        Actor.operator(), agent, name="echo", command="python", args=["echo_server.py"]
    )
    fake_api.push(
        tool_call("mcp__echo__where", {}),
        tool_call("mcp__echo__shout", {"text": "hi"}),
        reply("done"),
    )
    exchange = await say(settings.cli_socket, "use your tools", timeout=WAIT_S)
    assert texts(exchange) == ["done"]
    assert "mcp__echo__shout" in fake_api.requests[0].tool_names, fake_api.requests[0].system_text[
        -600:
    ]
    (where,) = fake_api.requests[1].tool_results()
    assert where["content"] == "/workspace/agent"  # it ran in the sandbox's view of the folder
    (shouted,) = fake_api.requests[2].tool_results()
    assert shouted["content"] == "HI"


async def test_an_approved_pip_package_is_installed_for_the_agents_next_start(
    proxied_host: Host, runtime_name: str, fake_api: FakeAnthropic
) -> None:
    host = proxied_host
    settings = host.settings
    agent = _claude(host)
    host.repo.upsert_user("cli:alice", kind="cli", display_name=None)
    host.repo.grant_role("cli:alice", "owner", granted_by=None)  # an admin: no card needed
    probe = "python -c 'import six; print(\"six\", six.__version__)'"
    fake_api.push(
        tool_call("bash", {"command": probe}),
        tool_call("install_packages", {"pip": ["six"], "reason": "a test"}),
        reply("asked"),
    )
    await say(settings.cli_socket, "install six", timeout=WAIT_S)
    before = fake_api.requests[1].tool_results()[0]["content"]
    assert "No module named 'six'" in before  # not in the image yet

    async def built() -> str | None:
        return host.repo.container_config(agent.id).packages_status

    status = json.loads(await until(built, timeout_s=300, what="the package build"))
    assert status["ok"] is True, status
    cfg = host.repo.container_config(agent.id)
    if runtime_name == "docker":  # a layer on the agent image, built with the network off
        assert str(cfg.image_tag).startswith("nanoclaw-agent-layer:")
    else:  # bubblewrap: a pip folder mounted read-only; the image is not used
        assert cfg.image_tag is None
        assert (settings.data_path / "packages" / agent.id / "site" / "six.py").is_file()
    (session,) = host.repo.sessions()
    await host.supervisor.stop(session.id)
    await until(lambda: _none_running(host), what="the sandbox to stop")
    fake_api.push(tool_call("bash", {"command": probe}), reply("six works"))
    after = await say(settings.cli_socket, "try six now", timeout=WAIT_S)
    assert texts(after)[-1] == "six works"
    result = next(
        r.tool_results()[0]["content"]
        for r in reversed(fake_api.requests)
        if r.tool_results() and "six" in str(r.tool_results()[0].get("content"))
    )
    assert result.startswith("six ")  # the next runner ran on the layer


async def _none_running(host: Host) -> bool:
    return not await live_runners(host)
