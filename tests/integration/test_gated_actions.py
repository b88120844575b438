"""The gated agent settings through the CLI (a real subprocess) and chat commands, on a running host:
destinations re-projected into live sessions, mounts checked against the allowlist, restarts that
stop runners after their turn and start them with a note read first."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from nanoclaw.db.models import SessionRow
from nanoclaw.host import Host, build_host
from nanoclaw.settings import Settings
from tests.agent.conftest import ChatListener, eventually
from tests.crash.harness import NANOCLAW, host_env
from tests.helpers import make_agent, say, texts, wire_chat

OWNER = "cli:olive"


@pytest.fixture
def allowlist(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    outside = tmp_path_factory.mktemp("allowed")
    (outside / "projects" / "site").mkdir(parents=True)
    (outside / "projects" / ".ssh").mkdir()
    path = tmp_path_factory.mktemp("config") / "mount-allowlist.json"
    path.write_text(json.dumps({"allowedRoots": [{"path": str(outside / "projects")}]}))
    settings.mount_allowlist_path = path
    return outside / "projects"


@pytest.fixture
async def world(settings: Settings, allowlist: Path) -> Any:
    host = build_host(settings)
    await host.start()
    host.repo.upsert_user(OWNER, kind="cli", display_name="olive")
    host.repo.grant_role(OWNER, "owner", granted_by="test")
    ada = make_agent(host.repo, "Ada")
    make_agent(host.repo, "Bob")
    wire_chat(host.repo, ada, "local")
    try:
        yield host
    finally:
        await host.stop()


async def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [NANOCLAW, *args],
        env=host_env(settings, COLUMNS="200",
                     NANOCLAW_MOUNT_ALLOWLIST_PATH=str(settings.mount_allowlist_path)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip


def projected(host: Host, session: SessionRow) -> list[str]:
    layout = host.sessions.layout(session)
    conn = sqlite3.connect(f"file:{layout.inbound_db}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT name FROM destinations ORDER BY name")]
    finally:
        conn.close()


def ada_session(host: Host) -> SessionRow:
    ada = host.repo.agent_group("Ada")
    (session,) = [s for s in host.repo.sessions() if s.agent_group_id == ada.id]
    return session


async def test_cli_destinations_link_two_agents_and_reproject_live_sessions(world: Host) -> None:
    await say(world.settings.cli_socket, "hello")  # Ada has a live session now
    added = await cli(world.settings, "destinations", "add", "Ada", "Bob", "--agent", "Bob")
    assert added.returncode == 0, added.stderr
    assert "bob" in projected(world, ada_session(world))
    chat = await cli(world.settings, "destinations", "add", "Ada", "team", "--chat", "cli/local")
    assert chat.returncode == 0, chat.stderr
    listed = json.loads((await cli(world.settings, "destinations", "list", "Ada", "--json")).stdout)
    assert {(d["name"], d["type"]) for d in listed} >= {("bob", "agent"), ("team", "channel")}
    # The new destination works without a restart: Ada's message reaches Bob.
    await say(world.settings.cli_socket, "!to bob hi Bob")
    bob = world.repo.agent_group("Bob")
    await eventually(lambda: any(s.agent_group_id == bob.id for s in world.repo.sessions()))
    removed = await cli(world.settings, "destinations", "remove", "Ada", "bob")
    assert removed.returncode == 0 and "bob" not in projected(world, ada_session(world))
    again = await cli(world.settings, "destinations", "remove", "Ada", "bob")
    assert again.returncode == 5 and "not found" in again.stderr


async def test_cli_mounts_are_checked_against_the_allowlist(world: Host, allowlist: Path) -> None:
    ok = await cli(world.settings, "mounts", "add", "Ada", str(allowlist / "site"), "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["mount"]["containerPath"] == "site"
    cfg = world.repo.container_config(world.repo.agent_group("Ada").id)
    assert json.loads(cfg.additional_mounts)[0]["hostPath"] == str((allowlist / "site").resolve())
    blocked = await cli(
        world.settings, "mounts", "add", "Ada", str(allowlist / ".ssh"), "--container-path", "k"
    )
    assert blocked.returncode != 0 and "blocked pattern" in blocked.stderr
    outside = await cli(world.settings, "mounts", "add", "Ada", "/etc")
    assert outside.returncode != 0 and "not under an allowed root" in outside.stderr
    assert len(json.loads(world.repo.container_config(cfg.agent_group_id).additional_mounts)) == 1


async def test_cli_restart_stops_after_the_turn_and_the_note_is_read_first(world: Host) -> None:
    await say(world.settings.cli_socket, "hello")
    session = ada_session(world)
    before = world.supervisor._running[session.id].handle.runner_id
    async with ChatListener(world.settings.cli_socket) as chat:
        done = await cli(world.settings, "agents", "restart", "Ada", "--message", "mounts reloaded")
        assert done.returncode == 0 and "1 running session" in done.stdout, done.stderr
        reply = await chat.wait_for(lambda f: "mounts reloaded" in str(f.get("text")), 30)
    assert reply["text"].endswith("heard: mounts reloaded")
    after = world.supervisor._running[session.id].handle.runner_id
    assert after != before  # a fresh runner read the note


async def test_chat_commands_for_destinations_mounts_and_restart(
    world: Host, allowlist: Path
) -> None:
    async def owner(text: str) -> str:
        exchange = await say(world.settings.cli_socket, text, chat="ops", sender="olive")
        return "\n".join(texts(exchange))

    assert "Ada can now send to bob" in await owner("/destinations Ada add bob agent Bob")
    assert "bob" in await owner("/destinations Ada")
    assert "at /workspace/extra/site" in await owner(f"/mounts Ada add {allowlist / 'site'}")
    assert "no running session" in await owner("/restart Ada")
    assert "Removed destination bob" in await owner("/DESTINATIONS Ada remove bob")
