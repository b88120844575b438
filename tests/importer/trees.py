"""Build NanoClaw v1 and TypeScript v2 install trees for import tests, from the DDL in v1-install.md."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

V1_FINAL_DDL = """
CREATE TABLE chats (jid TEXT PRIMARY KEY, name TEXT, last_message_time TEXT,
                    channel TEXT, is_group INTEGER DEFAULT 0);
CREATE TABLE messages (id TEXT, chat_jid TEXT, sender TEXT, sender_name TEXT, content TEXT,
                    timestamp TEXT, is_from_me INTEGER, is_bot_message INTEGER DEFAULT 0,
                    reply_to_message_id TEXT, reply_to_message_content TEXT, reply_to_sender_name TEXT,
                    PRIMARY KEY (id, chat_jid));
CREATE TABLE scheduled_tasks (id TEXT PRIMARY KEY, group_folder TEXT NOT NULL, chat_jid TEXT NOT NULL,
                    prompt TEXT NOT NULL, schedule_type TEXT NOT NULL, schedule_value TEXT NOT NULL,
                    next_run TEXT, last_run TEXT, last_result TEXT, status TEXT DEFAULT 'active',
                    created_at TEXT NOT NULL, context_mode TEXT DEFAULT 'isolated', script TEXT);
CREATE TABLE task_run_logs (id INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT NOT NULL, run_at TEXT NOT NULL,
                    duration_ms INTEGER NOT NULL, status TEXT NOT NULL, result TEXT, error TEXT);
CREATE TABLE router_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE sessions (group_folder TEXT PRIMARY KEY, session_id TEXT NOT NULL);
CREATE TABLE registered_groups (jid TEXT PRIMARY KEY, name TEXT NOT NULL, folder TEXT NOT NULL UNIQUE,
                    trigger_pattern TEXT NOT NULL, added_at TEXT NOT NULL, container_config TEXT,
                    requires_trigger INTEGER DEFAULT 1, is_main INTEGER DEFAULT 0);
"""

# An older install: no chats.channel/is_group, no context_mode/script, no requires_trigger/is_main.
V1_OLD_DDL = """
CREATE TABLE chats (jid TEXT PRIMARY KEY, name TEXT, last_message_time TEXT);
CREATE TABLE messages (id TEXT, chat_jid TEXT, sender TEXT, sender_name TEXT, content TEXT,
                    timestamp TEXT, is_from_me INTEGER, PRIMARY KEY (id, chat_jid));
CREATE TABLE scheduled_tasks (id TEXT PRIMARY KEY, group_folder TEXT NOT NULL, chat_jid TEXT NOT NULL,
                    prompt TEXT NOT NULL, schedule_type TEXT NOT NULL, schedule_value TEXT NOT NULL,
                    next_run TEXT, last_run TEXT, last_result TEXT, status TEXT DEFAULT 'active',
                    created_at TEXT NOT NULL);
CREATE TABLE sessions (group_folder TEXT PRIMARY KEY, session_id TEXT NOT NULL);
CREATE TABLE registered_groups (jid TEXT PRIMARY KEY, name TEXT NOT NULL, folder TEXT NOT NULL UNIQUE,
                    trigger_pattern TEXT NOT NULL, added_at TEXT NOT NULL, container_config TEXT);
"""

OWNER_JID = "15551230000@s.whatsapp.net"
FAMILY_JID = "120363001@g.us"
TELEGRAM_JID = "tg:-1001234"
NEXT_RUN_90 = "2026-12-01T10:30:00.000Z"
NINETY_MIN_MS = 90 * 60 * 1000


@dataclass(frozen=True)
class V1Tree:
    root: Path
    groups: int
    interval_task: str = "task-every-90"


def make_v1(
    root: Path, *, schema: str = "final", damaged: bool = False, fork: bool = False
) -> V1Tree:
    """Three registered groups (main on WhatsApp, a WhatsApp family group, a Telegram group)."""
    (root / "store").mkdir(parents=True)
    (root / "package.json").write_text(json.dumps({"name": "nanoclaw" if not fork else "my-claw"}))
    (root / "src").mkdir()
    (root / "container").mkdir()
    db = sqlite3.connect(root / "store" / "messages.db")
    db.executescript(V1_FINAL_DDL if schema == "final" else V1_OLD_DDL)
    final = schema == "final"
    groups = [
        (OWNER_JID, "Andy (main)", "main", "@Andy", 0, 1),
        (FAMILY_JID, "Family", "family", "@Andy", 1, 0),
        (TELEGRAM_JID, "Book club", "book-club", "@Andy", 1, 0),
    ]
    for jid, name, folder, trigger, requires, is_main in groups:
        if final:
            db.execute(
                "INSERT INTO registered_groups VALUES (?,?,?,?,?,?,?,?)",
                (
                    jid,
                    name,
                    folder,
                    trigger,
                    "2026-01-01T00:00:00Z",
                    json.dumps({"timeout": 300}),
                    requires,
                    is_main,
                ),
            )
        else:
            db.execute(
                "INSERT INTO registered_groups VALUES (?,?,?,?,?,?)",
                (jid, name, folder, trigger, "2026-01-01T00:00:00Z", None),
            )
        db.execute("INSERT INTO chats (jid, name) VALUES (?, ?)", (jid, name))
    for i, (chat, sender, sender_name) in enumerate(
        [(OWNER_JID, OWNER_JID, "Olive")] * 3
        + [(FAMILY_JID, "15559990000@s.whatsapp.net", "Sam")]
        + [(TELEGRAM_JID, "777", "Tess")]
    ):
        cols = "(id, chat_jid, sender, sender_name, content, timestamp, is_from_me)"
        db.execute(
            f"INSERT INTO messages {cols} VALUES (?,?,?,?,?,?,?)",
            (f"m{i}", chat, sender, sender_name, "hello", "2026-11-30T10:00:00Z", 0),
        )
    tasks = [
        (
            "task-every-90",
            "family",
            FAMILY_JID,
            "Stretch!",
            "interval",
            str(NINETY_MIN_MS),
            NEXT_RUN_90,
            "active",
            "isolated",
            None,
        ),
        (
            "task-daily",
            "main",
            OWNER_JID,
            "Morning brief",
            "cron",
            "0 9 * * *",
            "2026-12-02T08:00:00.000Z",
            "active",
            "group",
            "echo '{\"wakeAgent\": true}'",
        ),
        (
            "task-missed",
            "main",
            OWNER_JID,
            "Call mum",
            "once",
            "2026-11-01T12:00:00.000Z",
            "2026-11-01T12:00:00.000Z",
            "active",
            "isolated",
            None,
        ),
        (
            "task-future",
            "book-club",
            TELEGRAM_JID,
            "Meeting tonight",
            "once",
            "2026-12-24T18:00:00.000Z",
            "2026-12-24T18:00:00.000Z",
            "active",
            "group",
            None,
        ),
        (
            "task-paused",
            "family",
            FAMILY_JID,
            "Water plants",
            "cron",
            "0 18 * * 1",
            "2026-12-07T17:00:00.000Z",
            "paused",
            "group",
            None,
        ),
        (
            "task-done",
            "main",
            OWNER_JID,
            "Old",
            "once",
            "2026-01-01T00:00:00.000Z",
            None,
            "completed",
            "isolated",
            None,
        ),
    ]
    for t in tasks:
        if final:
            db.execute(
                "INSERT INTO scheduled_tasks (id, group_folder, chat_jid, prompt, schedule_type, "
                "schedule_value, next_run, status, created_at, context_mode, script) "
                "VALUES (?,?,?,?,?,?,?,?,'2026-01-01',?,?)",
                t,
            )
        else:
            db.execute(
                "INSERT INTO scheduled_tasks (id, group_folder, chat_jid, prompt, schedule_type, "
                "schedule_value, next_run, status, created_at) VALUES (?,?,?,?,?,?,?,?,'2026-01-01')",
                t[:8],
            )
    if damaged:
        # A table that cannot be read: a view over a table that no longer exists.
        db.execute("ALTER TABLE messages RENAME TO messages_old")
        db.execute("CREATE VIEW messages AS SELECT * FROM gone_table")
    if fork:
        db.execute("CREATE TABLE fork_extras (k TEXT, v TEXT)")
    db.commit()
    db.close()
    groups_dir = root / "groups"
    for folder, memory in (
        ("main", "# Andy\nOlive likes short answers.\n"),
        ("family", "# Family\nSam is the youngest.\n"),
        ("book-club", "# Book club\nWe read sci-fi.\nSee /workspace/ipc/tasks for reminders.\n"),
    ):
        (groups_dir / folder).mkdir(parents=True)
        (groups_dir / folder / "CLAUDE.md").write_text(memory)
    (groups_dir / "family" / "notes").mkdir()
    (groups_dir / "family" / "notes" / "birthdays.md").write_text("Sam: 3 May\n")
    (groups_dir / "global").mkdir()
    (groups_dir / "global" / "CLAUDE.md").write_text("Always answer in English.\n")
    if fork:
        (groups_dir / "family" / "scripts").mkdir()
        (groups_dir / "family" / "scripts" / "fetch.sh").write_text("#!/bin/sh\necho hi\n")
        (root / "custom-fork-file.txt").write_text("fork\n")
    (root / ".env").write_text(
        "ASSISTANT_NAME=Andy\nASSISTANT_HAS_OWN_NUMBER=false\nTZ=Europe/Berlin\n"
        "TELEGRAM_BOT_TOKEN=123:abc\n"
        "CLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat-xyz\nONECLI_URL=http://localhost:1\n"
    )
    (root / "store" / "auth").mkdir()
    (root / "store" / "auth" / "creds.json").write_text("{}")
    return V1Tree(root=root, groups=3)


V2_DDL = """
CREATE TABLE agent_groups (id TEXT PRIMARY KEY, name TEXT, folder TEXT UNIQUE, agent_provider TEXT, created_at TEXT);
CREATE TABLE messaging_groups (id TEXT PRIMARY KEY, channel_type TEXT, platform_id TEXT, name TEXT,
  is_group INTEGER, unknown_sender_policy TEXT, denied_at TEXT, created_at TEXT,
  UNIQUE(channel_type, platform_id));
CREATE TABLE messaging_group_agents (id TEXT PRIMARY KEY, messaging_group_id TEXT, agent_group_id TEXT,
  engage_mode TEXT, engage_pattern TEXT, sender_scope TEXT, ignored_message_policy TEXT,
  session_mode TEXT, priority INTEGER, created_at TEXT);
CREATE TABLE users (id TEXT PRIMARY KEY, kind TEXT, display_name TEXT, created_at TEXT);
CREATE TABLE user_roles (user_id TEXT, role TEXT, agent_group_id TEXT, granted_by TEXT, granted_at TEXT);
CREATE TABLE agent_group_members (user_id TEXT, agent_group_id TEXT, added_by TEXT, added_at TEXT);
CREATE TABLE agent_destinations (agent_group_id TEXT, local_name TEXT, target_type TEXT, target_id TEXT, created_at TEXT);
CREATE TABLE container_configs (agent_group_id TEXT PRIMARY KEY, provider TEXT, model TEXT, effort TEXT,
  image_tag TEXT, assistant_name TEXT, max_messages_per_prompt INTEGER, skills TEXT, mcp_servers TEXT,
  packages_apt TEXT, packages_npm TEXT, additional_mounts TEXT, cli_scope TEXT, updated_at TEXT);
CREATE TABLE sessions (id TEXT PRIMARY KEY, agent_group_id TEXT, messaging_group_id TEXT, thread_id TEXT,
  agent_provider TEXT, status TEXT, container_status TEXT, last_active TEXT, created_at TEXT);
"""
V2_INBOUND_DDL = """
CREATE TABLE messages_in (id TEXT PRIMARY KEY, seq INTEGER UNIQUE, kind TEXT, timestamp TEXT, status TEXT,
  process_after TEXT, recurrence TEXT, series_id TEXT, tries INTEGER, trigger INTEGER, platform_id TEXT,
  channel_type TEXT, thread_id TEXT, content TEXT, source_session_id TEXT, on_wake INTEGER);
"""


def make_v2(root: Path) -> Path:
    """A TypeScript v2 install: two agents, Telegram and Slack chats, roles, a destination, tasks."""
    (root / "data").mkdir(parents=True)
    db = sqlite3.connect(root / "data" / "v2.db")
    db.executescript(V2_DDL)
    db.executemany(
        "INSERT INTO agent_groups VALUES (?,?,?,NULL,'2026-01-01')",
        [
            ("ag-1", "Andy", "dm-with-olive"),
            ("ag-2", "Researcher", "research"),
        ],
    )
    db.executemany(
        "INSERT INTO messaging_groups VALUES (?,?,?,?,?,?,NULL,'2026-01-01')",
        [
            ("mg-1", "telegram", "telegram:42", "Olive DM", 0, "strict"),
            ("mg-2", "slack", "slack:C0123", "research", 1, "request_approval"),
        ],
    )
    db.executemany(
        "INSERT INTO messaging_group_agents VALUES (?,?,?,?,?,?,?,?,?,'2026-01-01')",
        [
            ("w-1", "mg-1", "ag-1", "pattern", ".", "all", "drop", "shared", 0),
            (
                "w-2",
                "mg-2",
                "ag-2",
                "pattern",
                "(?=lookahead)x",
                "known",
                "accumulate",
                "per-thread",
                1,
            ),
        ],
    )
    db.executemany(
        "INSERT INTO users VALUES (?,?,?,'2026-01-01')",
        [
            ("telegram:42", "telegram", "Olive"),
            ("slack:U9", "slack", "Rae"),
        ],
    )
    db.executemany(
        "INSERT INTO user_roles VALUES (?,?,?,'setup','2026-01-01')",
        [
            ("telegram:42", "owner", None),
            ("slack:U9", "admin", "ag-2"),
        ],
    )
    db.execute("INSERT INTO agent_group_members VALUES ('slack:U9','ag-2','setup','2026-01-01')")
    db.execute(
        "INSERT INTO agent_destinations VALUES ('ag-1','researcher','agent','ag-2','2026-01-01')"
    )
    db.executemany(
        "INSERT INTO container_configs (agent_group_id, cli_scope, mcp_servers, packages_apt, "
        "additional_mounts) VALUES (?,?,?,?,?)",
        [
            ("ag-1", "global", "{}", "[]", "[]"),
            ("ag-2", "group", '{"cal": {"command": "x"}}', '["jq"]', "[]"),
        ],
    )
    db.execute(
        "INSERT INTO sessions VALUES ('sess-1','ag-1','mg-1',NULL,NULL,'active','stopped','2026-11-30','2026-01-01')"
    )
    db.commit()
    db.close()
    sess = root / "data" / "v2-sessions" / "ag-1" / "sess-1"
    sess.mkdir(parents=True)
    inbound = sqlite3.connect(sess / "inbound.db")
    inbound.executescript(V2_INBOUND_DDL)
    inbound.executemany(
        "INSERT INTO messages_in VALUES (?,?,?,'2026-11-01',?,?,?,?,0,1,?,?,NULL,?,NULL,0)",
        [
            (
                "t-1",
                2,
                "task",
                "pending",
                "2026-12-02T07:00:00Z",
                "0 8 * * *",
                "t-1",
                "telegram:42",
                "telegram",
                json.dumps({"prompt": "Daily news"}),
            ),
            (
                "c-1",
                4,
                "chat",
                "completed",
                None,
                None,
                "c-1",
                "telegram:42",
                "telegram",
                json.dumps({"text": "hi"}),
            ),
            (
                "t-2",
                6,
                "task",
                "completed",
                "2026-11-01T07:00:00Z",
                None,
                "t-2",
                "telegram:42",
                "telegram",
                json.dumps({"prompt": "done"}),
            ),
        ],
    )
    inbound.commit()
    inbound.close()
    for folder, memory in (
        ("dm-with-olive", "Olive: vegetarian.\n"),
        ("research", "Cite sources.\n"),
    ):
        (root / "groups" / folder).mkdir(parents=True)
        (root / "groups" / folder / "CLAUDE.local.md").write_text(memory)
        (root / "groups" / folder / "CLAUDE.md").write_text("(composed by v2)\n")
    (root / ".env").write_text(
        "TZ=America/New_York\nSLACK_BOT_TOKEN=xoxb-1\nSLACK_APP_TOKEN=xapp-1\n"
    )
    return root
