"""The /mcp and /skills chat commands, through the real CLI channel, for an owner and a non-admin."""

from __future__ import annotations

import sys
from pathlib import Path

from nanoclaw.host import Host
from tests.helpers import make_agent, say, texts, wire_chat

ECHO_SERVER = Path(__file__).resolve().parents[1] / "fixtures" / "mcp" / "echo_server.py"


async def test_an_owner_manages_mcp_servers_and_sees_skills_from_chat(host: Host) -> None:
    host.repo.upsert_user("cli:olive", kind="cli", display_name="olive")
    host.repo.grant_role("cli:olive", "owner", granted_by="test")
    andy = make_agent(host.repo, "Andy")
    wire_chat(host.repo, andy, "team", policy="public")
    sock = host.settings.cli_socket

    async def as_owner(text: str) -> str:
        return "\n".join(texts(await say(sock, text, chat="ops", sender="olive")))

    assert "added to Andy" in await as_owner(f"/MCP Andy add echo {sys.executable} {ECHO_SERVER}")
    assert "name=echo" in await as_owner("/mcp Andy list")
    refused = await as_owner("/mcp Andy add Bad-Name python")
    assert "invalid MCP server name" in refused
    denied = texts(await say(sock, "/mcp Andy list", chat="team", sender="bob"))
    assert denied == ["Permission denied: /mcp requires admin access."]
    skill = host.settings.groups_path / andy.folder / "skills" / "weather"
    skill.mkdir(parents=True)
    (skill / "SKILL.md").write_text(
        "---\nname: weather\ndescription: Read the forecast\n---\nSteps…\n"
    )
    assert "weather: Read the forecast" in await as_owner("/skills Andy")
    assert "removed" in await as_owner("/mcp Andy remove echo")
    assert "(none)" in await as_owner("/mcp Andy list")
