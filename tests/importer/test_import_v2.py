"""``nanoclaw import`` from a TypeScript v2 tree: the entity model, memory, tasks, what needs the user."""

from __future__ import annotations

import json
from pathlib import Path

from nanoclaw.settings import Settings
from tests.importer.conftest import nc, nc_json, tree_hash
from tests.importer.trees import make_v2


def test_v2_entities_memory_and_tasks_are_carried_and_a_second_run_reuses(
    tmp_path: Path, settings: Settings, env_file: Path
) -> None:
    root = make_v2(tmp_path / "v2")
    before = tree_hash(root)
    code, out = nc("import", str(root), "--yes", "--json")  # the v2 install names its owner
    report = json.loads(out)
    assert code == 0, report["problems"]
    assert report["source"]["kind"] == "v2"
    assert tree_hash(root) == before

    agents = {a["folder"]: a for a in nc_json("agents", "list")}
    assert set(agents) == {"dm-with-olive", "research"}
    assert agents["dm-with-olive"]["admin_scope"] == "global"  # cli_scope global
    chats = {c["chat"] for c in nc_json("channels", "list")}
    assert chats == {"telegram/42", "slack/C0123"}  # Chat SDK prefixes stripped
    wirings = {w["chat"]: w for w in nc_json("wirings", "list")}
    assert (wirings["telegram/42"]["engage"], wirings["telegram/42"]["pattern"]) == ("pattern", ".")
    research = wirings["slack/C0123"]
    # A pattern this install cannot accept becomes a mention, and the report says so.
    assert research["engage"] == "mention"
    assert any(
        i["what"] == "wiring" and i["action"] == "needs you" and "not accepted" in i["detail"]
        for i in report["plan"]
    )
    assert (research["session_mode"], research["sender_scope"], research["ignored"]) == (
        "per-thread",
        "known",
        "accumulate",
    )
    roles = {(r["user"], r["role"]) for r in nc_json("roles", "list")}
    assert {("telegram:42", "owner"), ("slack:U9", "admin")} <= roles
    members = nc_json("members", "list")
    assert any(m["user"] == "slack:U9" for m in members)

    memory = settings.groups_path / "dm-with-olive" / "CLAUDE.local.md"
    assert memory.read_text() == "Olive: vegetarian.\n"
    assert (
        "composed by v2" not in (settings.groups_path / "dm-with-olive" / "CLAUDE.md").read_text()
    )

    tasks = nc_json("tasks", "list")
    assert [(t["recurrence"], t["recurrence_tz"]) for t in tasks] == [
        ("0 8 * * *", "America/New_York")
    ]
    assert any("vault" in t for t in report["todo"])
    assert any("mcp_servers" in t for t in report["todo"])
    env = env_file.read_text()
    assert "SLACK_BOT_TOKEN=xoxb-1" in env and "NANOCLAW_TIMEZONE=America/New_York" in env

    code, out = nc("import", str(root), "--yes", "--json")
    again = json.loads(out)
    assert code == 0 and [i for i in again["plan"] if i["action"] == "create"] == []
    assert len(nc_json("tasks", "list")) == 1
