"""add_mount + restart_agent inside real sandboxes (Docker and bubblewrap): the mount, checked
against the allowlist, appears at /workspace/extra after the restart, and the fresh runner's
first turn is the restart note."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from nanoclaw.admin.service import Actor
from nanoclaw.host import build_host
from tests.e2e.test_sandbox_runtimes import WAIT_S
from tests.fakes.anthropic_server import FakeAnthropic, reply, tool_call
from tests.helpers import say, texts
from tests.task_script_scenarios import claude_agent

KEY = "sk-ant-e2e-not-a-real-key"


async def test_a_new_mount_is_there_after_the_restart(
    make_settings: Any, fake_api: FakeAnthropic, tmp_path: Path
) -> None:
    root = tmp_path / "shared-projects"
    (root / "site").mkdir(parents=True)
    (root / "site" / "marker.txt").write_text("mounted from the host")
    allowlist = tmp_path / "allow" / "mount-allowlist.json"
    allowlist.parent.mkdir()
    allowlist.write_text(json.dumps({"allowedRoots": [{"path": str(root)}]}))
    settings = make_settings(
        anthropic_api_key=SecretStr(KEY),
        anthropic_base_url=fake_api.base_url,
        mount_allowlist_path=allowlist,
    )
    host = build_host(settings)
    await host.start()
    try:
        agent = claude_agent(host)
        fake_api.push(reply("hello"))
        assert texts(await say(settings.cli_socket, "hi", timeout=WAIT_S)) == ["hello"]
        admin = host.permissions.admin
        entry = admin.add_mount(Actor.operator(), agent, str(root / "site"))
        assert entry["containerPath"] == "site" and entry["readonly"] is True
        fake_api.push(
            tool_call("bash", {"command": "cat /workspace/extra/site/marker.txt"}),
            reply("The mount is there."),
        )
        assert admin.restart_agent(Actor.operator(), agent, "Check /workspace/extra/site.") == 1
        requests = await fake_api.wait_requests(3, timeout_s=WAIT_S)
        assert "Check /workspace/extra/site." in requests[1].all_text()
        (result,) = requests[2].tool_results()
        assert str(result["content"]).strip() == "mounted from the host"
    finally:
        await host.stop()
