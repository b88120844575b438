"""The ``nanoclaw`` admin resources: tables, --json, exit codes, approvals via the running host."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from typer.testing import CliRunner

from nanoclaw.admin.bootstrap import operator_handle
from nanoclaw.cli.app import app
from nanoclaw.host import Host
from nanoclaw.settings import Settings
from tests.chat_client import ChatClient
from tests.helpers import make_agent, wire_chat

runner = CliRunner()


@pytest.fixture(autouse=True)
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NANOCLAW_ENV_FILE", "")
    monkeypatch.setenv("NANOCLAW_DATA_DIR", str(settings.data_path))
    monkeypatch.setenv("NANOCLAW_GROUPS_DIR", str(settings.groups_path))
    monkeypatch.setenv("NANOCLAW_CLI_SOCKET_PATH", str(settings.cli_socket))


async def nc(*args: str) -> tuple[int, str]:
    result = await asyncio.to_thread(runner.invoke, app, list(args))
    return result.exit_code, result.output


async def nc_json(*args: str) -> Any:
    code, out = await nc(*args, "--json")
    assert code == 0, out
    return json.loads(out)


async def test_resources_create_list_update_delete_with_json_and_exit_codes(
    settings: Settings,
) -> None:
    assert (await nc("agents", "create", "Andy"))[0] == 0
    assert (settings.groups_path / "andy" / "CLAUDE.md").exists()
    agents = await nc_json("agents", "list")
    assert [a["name"] for a in agents] == ["Andy"]  # type: ignore[union-attr,index]
    code, out = await nc("agents", "list")
    assert code == 0 and "Andy" in out and "admin_scope" in out
    assert (await nc("wirings", "create", "cli/team", "Andy", "--engage", "mention"))[0] == 0
    (wiring,) = await nc_json("wirings", "list")  # type: ignore[misc]
    assert (wiring["chat"], wiring["engage"]) == ("cli/team", "mention")
    assert (
        await nc("wirings", "update", "cli/team", "Andy", "--engage", "pattern", "--pattern", "^hi")
    )[0] == 0
    (wiring,) = await nc_json("wirings", "list")  # type: ignore[misc]
    assert (wiring["engage"], wiring["pattern"]) == ("pattern", "^hi")
    assert (await nc("channels", "policy", "cli/team", "request_approval"))[0] == 0
    (chat,) = await nc_json("channels", "list")  # type: ignore[misc]
    assert chat["policy"] == "request_approval" and chat["agents"] == ["Andy"]
    assert (await nc("roles", "grant", "cli:olive", "owner"))[0] == 0
    assert (await nc("roles", "grant", "cli:ada", "admin", "--agent", "Andy"))[0] == 0
    roles = await nc_json("roles", "list")
    assert {(r["user"], r["role"], r["agent"]) for r in roles} == {  # type: ignore[union-attr]
        ("cli:olive", "owner", "(global)"), ("cli:ada", "admin", "Andy"),
    }  # fmt: skip
    assert (await nc("members", "add", "Andy", "cli:bob"))[0] == 0
    assert [m["user"] for m in await nc_json("members", "list", "Andy")] == ["cli:bob"]  # type: ignore[union-attr]
    assert (await nc("members", "remove", "Andy", "cli:bob"))[0] == 0
    assert (await nc("agents", "update", "Andy", "--admin-scope", "global"))[0] == 0
    assert (await nc_json("agents", "get", "Andy"))["admin_scope"] == "global"  # type: ignore[index]
    assert await nc_json("sessions", "list") == []
    assert await nc_json("dropped", "list") == []
    assert await nc_json("approvals", "list") == []
    assert (await nc("wirings", "delete", "cli/team", "Andy"))[0] == 0
    assert await nc_json("wirings", "list") == []
    # exit codes scripts rely on: 5 not found, 2 bad input, 1 refused
    assert (await nc("agents", "get", "Nobody"))[0] == 5
    assert (await nc("channels", "policy", "cli/team", "lax"))[0] == 2
    assert (await nc("agents", "update", "Andy", "--admin-scope", "root"))[0] == 2
    assert (await nc("roles", "revoke", "cli:olive", "owner"))[0] == 2  # the last owner stays
    assert (await nc("sessions", "get", "sess-nope"))[0] == 5
    assert (await nc("approvals", "approve", "appr-nope"))[0] == 5


async def test_approve_through_the_running_host(host: Host) -> None:
    me = f"cli:{operator_handle()}"
    host.repo.upsert_user(me, kind="cli", display_name="me")
    host.repo.grant_role(me, "owner", granted_by="test")
    andy = make_agent(host.repo, "Andy")
    wire_chat(host.repo, andy, "team", policy="request_approval")
    async with ChatClient(host.settings.cli_socket, "team", "bob") as bob:
        await bob.say("hi")
        await bob.wait_for(lambda f: f.get("type") == "notice")
        (pending,) = await nc_json("approvals", "list")  # type: ignore[misc]
        assert pending["kind"] == "sender" and pending["options"] == ["1. Allow", "2. Deny"]
        code, out = await nc("approvals", "approve", pending["id"])
        assert code == 0 and "Approved" in out
        await bob.reply_containing("heard: hi")
        code, out = await nc("approvals", "deny", pending["id"])
        assert code == 0 and "already" in out
    assert (await nc_json("approvals", "list", "--status", "approved"))[0]["id"] == pending["id"]  # type: ignore[index]


async def test_approvals_need_the_host(settings: Settings) -> None:
    from nanoclaw.admin.store import AdminStore, NewApproval
    from nanoclaw.db.central import CentralDB

    db = CentralDB(path=settings.central_db_path, migrations_root=settings.migrations_path)
    db.migrate()
    options = [{"label": "Approve", "value": "approve"}]
    new = NewApproval(kind="action", title="t", question="q", options=options, payload={}, ttl_s=60)
    approval = AdminStore(db).create_approval(new)
    db.dispose()
    assert approval is not None
    assert (await nc("approvals", "approve", approval.id))[0] == 3
