"""``nanoclaw tasks list|pause|resume|cancel`` as a real subprocess against a real install."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta

from nanoclaw.contract.timeutil import to_iso, utc_now
from nanoclaw.db.central import CentralDB
from nanoclaw.db.repository import Repository
from nanoclaw.sessions.service import SessionService
from nanoclaw.sessions.store import InboundMessage, SessionStore
from nanoclaw.settings import Settings
from tests.crash.harness import NANOCLAW, host_env
from tests.helpers import make_agent, wire_chat


def run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NANOCLAW, "tasks", *args],
        env=host_env(settings, COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_tasks_cli_lists_and_controls_series(settings: Settings) -> None:
    settings.data_path.mkdir(parents=True, exist_ok=True)
    db = CentralDB(path=settings.central_db_path, migrations_root=settings.migrations_path)
    db.migrate()
    repo = Repository(db)
    agent = make_agent(repo, "Andy")
    mg, _ = wire_chat(repo, agent, "local")
    store = SessionStore(sessions_root=settings.sessions_path)
    _, layout = SessionService(repo=repo, store=store).resolve(
        agent_group_id=agent.id, messaging_group_id=mg.id, thread_id=None, mode="shared"
    )
    store.insert_messages(
        layout,
        [
            InboundMessage(
                id="brief",
                kind="task",
                content={"prompt": "morning brief"},
                process_after=to_iso(utc_now() + timedelta(hours=1)),
                recurrence="0 8 * * *",
                recurrence_tz="Europe/Paris",
            ),
        ],
    )
    listed = json.loads(run(settings, "list", "--json").stdout)
    assert [(t["series_id"], t["status"], t["recurrence_tz"]) for t in listed] == [
        ("brief", "pending", "Europe/Paris")
    ]
    assert "morning brief" in run(settings, "list").stdout
    assert run(settings, "pause", "brief").returncode == 0
    assert json.loads(run(settings, "list", "--json").stdout)[0]["status"] == "paused"
    assert run(settings, "resume", "brief", "--json").returncode == 0
    assert run(settings, "cancel", "brief").returncode == 0
    assert json.loads(run(settings, "list", "--json").stdout) == []
    missing = run(settings, "pause", "brief")
    assert missing.returncode == 1 and "no live task" in missing.stderr
    db.dispose()
