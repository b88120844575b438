"""``nanoclaw import`` from a v1 tree: plan, dry run, every mapping, idempotence, damaged sources."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from nanoclaw.settings import Settings
from tests.importer.conftest import nc, nc_json, tree_hash
from tests.importer.trees import FAMILY_JID, OWNER_JID, make_v1

OWNER = f"whatsapp:{OWNER_JID}"
V1_TRIGGER = r"(?i)^@Andy\b"


def plan_of(report: Any) -> dict[tuple[str, str], str]:
    return {(i["what"], i["key"]): i["action"] for i in report["plan"]}


def actions(report: Any, what: str) -> list[str]:
    return [i["action"] for i in report["plan"] if i["what"] == what]


def test_dry_run_prints_the_plan_and_changes_nothing(tmp_path: Path, settings: Settings) -> None:
    tree = make_v1(tmp_path / "v1")
    before = tree_hash(tree.root)
    report = nc_json("import", str(tree.root), "--dry-run")
    assert isinstance(report, dict)
    assert report["source"]["kind"] == "v1" and report["dry_run"] is True
    assert actions(report, "agent") == ["create"] * 3
    assert actions(report, "chat") == ["create"] * 3
    assert actions(report, "wiring") == ["create"] * 3
    tasks = {i["key"].split(" ")[0]: i for i in report["plan"] if i["what"] == "task"}
    assert tasks["task-missed"]["action"] == "skip" and "passed" in tasks["task-missed"]["detail"]
    assert tasks["task-done"]["action"] == "skip"
    assert {
        tasks[t]["action"] for t in ("task-every-90", "task-daily", "task-future", "task-paused")
    } == {"create"}
    assert report["problems"] == []
    # Nothing changed here, and the source was only read.
    assert nc_json("agents", "list") == []
    assert tree_hash(tree.root) == before
    assert list((settings.logs_path / "import").glob("*-dry-run.json"))


def test_yes_without_an_owner_is_refused(tmp_path: Path) -> None:
    tree = make_v1(tmp_path / "v1")
    code, out = nc("import", str(tree.root), "--yes")
    assert code == 2 and "--owner" in out
    assert nc_json("agents", "list") == []


def test_a_database_that_is_not_nanoclaw_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "other"
    (root / "store").mkdir(parents=True)
    db = sqlite3.connect(root / "store" / "messages.db")
    db.execute("CREATE TABLE invoices (id INTEGER)")
    db.commit()
    db.close()
    code, out = nc("import", str(root), "--yes", "--owner", "cli:me")
    assert code == 2 and "not a NanoClaw v1 database" in out


def test_import_maps_every_part_and_a_second_run_creates_nothing(
    tmp_path: Path, settings: Settings, env_file: Path
) -> None:
    tree = make_v1(tmp_path / "v1", fork=True)
    before = tree_hash(tree.root)
    code, out = nc("import", str(tree.root), "--yes", "--owner", OWNER, "--json")
    assert code == 0, out
    report = json.loads(out)
    assert tree_hash(tree.root) == before

    agents = nc_json("agents", "list")
    assert isinstance(agents, list)
    by_folder = {a["folder"]: a for a in agents}
    assert set(by_folder) == {"main", "family", "book-club"}
    assert by_folder["main"]["admin_scope"] == "global"
    assert {a["name"] for a in agents} == {"Andy"}  # ASSISTANT_NAME names every agent
    wirings = {w["chat"]: w for w in nc_json("wirings", "list")}
    assert wirings[f"whatsapp/{OWNER_JID}"]["pattern"] == "."  # requires_trigger=0
    assert wirings[f"whatsapp/{FAMILY_JID}"]["pattern"] == V1_TRIGGER
    assert wirings["telegram/-1001234"]["pattern"] == V1_TRIGGER
    chats = {c["chat"]: c for c in nc_json("channels", "list")}
    assert chats["telegram/-1001234"]["name"] == "Book club"
    roles = nc_json("roles", "list")
    assert any(r["user"] == OWNER and r["role"] == "owner" for r in roles)

    tasks = {t["series_id"]: t for t in nc_json("tasks", "list")}
    every90 = next(t for s, t in tasks.items() if "every-90" in s)
    assert every90["recurrence"] == "@every 5400s"
    assert every90["process_after"].startswith("2026-12-01T10:30:00")
    daily = next(t for s, t in tasks.items() if "daily" in s)
    assert (daily["recurrence"], daily["recurrence_tz"]) == ("0 9 * * *", "Europe/Berlin")
    paused = next(t for s, t in tasks.items() if "paused" in s)
    assert paused["status"] == "paused"
    assert not any("missed" in s or "done" in s for s in tasks)

    family = settings.groups_path / "family"
    assert (family / "CLAUDE.local.md").read_text() == "# Family\nSam is the youngest.\n"
    assert (family / "notes" / "birthdays.md").read_text() == "Sam: 3 May\n"
    assert (family / "scripts" / "fetch.sh").exists()  # a fork's extra files are kept
    assert "Andy" in (family / "CLAUDE.md").read_text()  # our base instructions, not v1's memory
    assert any("book-club" in f and "/workspace/ipc" in f for f in report["flagged_files"])
    global_md = (settings.groups_path / "global" / "CLAUDE.md").read_text()
    assert (
        global_md.count("Always answer in English.") == 1
        and "imported from NanoClaw v1" in global_md
    )

    env = env_file.read_text()
    assert "NANOCLAW_TIMEZONE=Europe/Berlin" in env and "TELEGRAM_BOT_TOKEN=123:abc" in env
    assert "NANOCLAW_WHATSAPP_OWN_NUMBER=false" in env  # v1's shared-number mode carries over
    assert "CLAUDE_CODE_OAUTH_TOKEN" not in env and "ONECLI" not in env
    assert env_file.stat().st_mode & 0o777 == 0o600
    skipped_settings = {
        i["key"] for i in report["plan"] if i["what"] == "setting" and i["action"] == "skip"
    }
    assert {"CLAUDE_CODE_OAUTH_TOKEN", "ONECLI_URL"} <= skipped_settings
    assert any("WhatsApp" in t and "link again" in t for t in report["todo"])
    assert any("stop the old NanoClaw service" in t for t in report["todo"])
    backup = Path(report["backup"])
    assert (backup / "central.db").is_file() or any(backup.glob("*.db"))

    # The second run reuses everything and writes nothing new.
    code, out = nc("import", str(tree.root), "--yes", "--owner", OWNER, "--json")
    assert code == 0, out
    again = json.loads(out)
    assert [i for i in again["plan"] if i["action"] == "create"] == []
    assert actions(again, "agent") == ["reuse"] * 3
    assert len(nc_json("agents", "list")) == 3
    assert len(nc_json("tasks", "list")) == len(tasks)
    assert global_md == (settings.groups_path / "global" / "CLAUDE.md").read_text()
    assert env == env_file.read_text()


def test_an_isolated_task_is_stored_for_a_fresh_context(tmp_path: Path, settings: Settings) -> None:
    tree = make_v1(tmp_path / "v1")
    assert nc("import", str(tree.root), "--yes", "--owner", OWNER)[0] == 0
    contents: dict[str, dict[str, Any]] = {}
    for db in settings.sessions_path.rglob("inbound.db"):
        conn = sqlite3.connect(db)
        for series, raw in conn.execute(
            "SELECT series_id, content FROM messages_in WHERE kind='task'"
        ):
            contents[series] = json.loads(raw)
        conn.close()
    every90 = next(c for s, c in contents.items() if "every-90" in s)
    daily = next(c for s, c in contents.items() if "daily" in s)
    assert every90.get("context_mode") == "isolated"
    assert "context_mode" not in daily and daily["script"].startswith("echo")


def test_fire_missed_runs_a_passed_one_off_task(tmp_path: Path) -> None:
    tree = make_v1(tmp_path / "v1")
    code, out = nc("import", str(tree.root), "--yes", "--owner", OWNER, "--fire-missed")
    assert code == 0, out
    series = [t["series_id"] for t in nc_json("tasks", "list")]
    assert any("missed" in s for s in series)


def test_an_older_schema_without_the_late_columns_imports(tmp_path: Path) -> None:
    tree = make_v1(tmp_path / "v1", schema="old")
    code, out = nc("import", str(tree.root), "--yes", "--owner", OWNER, "--json")
    assert code == 0, out
    agents = {a["folder"]: a for a in nc_json("agents", "list")}
    assert agents["main"]["admin_scope"] == "global"  # the main folder, without is_main
    wirings = {w["chat"]: w for w in nc_json("wirings", "list")}
    # Without requires_trigger every group needs the trigger (v1's default).
    assert wirings[f"whatsapp/{OWNER_JID}"]["pattern"] == V1_TRIGGER


def test_a_damaged_table_is_recorded_and_the_other_steps_still_run(tmp_path: Path) -> None:
    tree = make_v1(tmp_path / "v1", damaged=True)
    code, out = nc("import", str(tree.root), "--yes", "--owner", OWNER, "--json")
    assert code == 1, out  # imported, with a problem listed
    report = json.loads(out)
    assert any(p["step"] == "senders" and "gone_table" in p["error"] for p in report["problems"])
    assert len(nc_json("agents", "list")) == 3
    assert nc_json("tasks", "list")


@pytest.mark.parametrize("where", ["sibling", "home"])
def test_an_install_is_found_in_the_usual_places(tmp_path: Path, where: str) -> None:
    from nanoclaw.importer.detect import detect

    project = tmp_path / "project"
    project.mkdir()
    home = tmp_path / "home"
    root = tmp_path / "nanoclaw" if where == "sibling" else home / "nanoclaw"
    make_v1(root)
    found = detect(None, project_root=project, home=home)
    assert found is not None and found.root == root.resolve()
    assert (
        detect(None, project_root=project, home=tmp_path / "empty-home") is None
        or where == "sibling"
    )
