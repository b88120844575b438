"""Read a TypeScript NanoClaw v2 install (``data/v2.db``, session DBs, ``groups/``) into a ``SourceModel``."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

from nanoclaw.importer.ids import from_v2
from nanoclaw.importer.model import (
    AgentSpec,
    ChatSpec,
    DestinationSpec,
    RoleSpec,
    SourceInstall,
    SourceModel,
    TaskSchedule,
    TaskSpec,
    UserSpec,
    WiringSpec,
)
from nanoclaw.importer.snapshot import read_step, rows, snapshot, start_model, utc_or_none

SESSIONS_DIR = "data/v2-sessions"
# v2 keeps credentials in its vault (OneCLI), which cannot be read from here.
VAULT_CREDENTIALS = ("the Anthropic credential (ANTHROPIC_API_KEY or a custom endpoint)",)


def read_v2(install: SourceInstall, *, now: datetime) -> SourceModel:
    model = start_model(install)
    chat_refs: dict[str, str] = {}
    with snapshot(install.db_path) as conn:
        read_step(model, "agent_groups", lambda: _agents(model, conn))
        read_step(model, "messaging_groups", lambda: chat_refs.update(_chats(model, conn)))
        read_step(model, "wirings", lambda: _wirings(model, conn, chat_refs))
        read_step(model, "users", lambda: _users(model, conn))
        read_step(model, "destinations", lambda: _destinations(model, conn, chat_refs))
        read_step(model, "container_configs", lambda: _configs(model, conn))
        sessions = rows(conn, "sessions", ["id", "agent_group_id", "messaging_group_id"])
    read_step(model, "tasks", lambda: _tasks(model, sessions, chat_refs))
    for what in VAULT_CREDENTIALS:
        if "ANTHROPIC_API_KEY" not in model.env:
            model.todo.append(
                f"enter {what} again: v2 keeps it in its vault, which is not readable"
            )
    if any(c.channel == "whatsapp" for c in model.chats):
        model.todo.append("WhatsApp: link again with `nanoclaw channels add whatsapp`")
    return model


def _agents(model: SourceModel, conn: sqlite3.Connection) -> None:
    for row in rows(conn, "agent_groups", ["id", "name", "folder"]):
        model.agents.append(
            AgentSpec(
                key=str(row["id"]),
                name=str(row["name"] or row["folder"]),
                folder=str(row["folder"]),
                memory_file="CLAUDE.local.md",
            )
        )


def _chats(model: SourceModel, conn: sqlite3.Connection) -> dict[str, str]:
    refs: dict[str, str] = {}
    wanted = ["id", "channel_type", "platform_id", "name", "is_group", "unknown_sender_policy"]
    for row in rows(conn, "messaging_groups", wanted):
        address = from_v2(str(row["channel_type"]), str(row["platform_id"]), bool(row["is_group"]))
        chat = ChatSpec(
            channel=address.channel,
            platform_id=address.platform_id,
            name=str(row["name"] or address.platform_id),
            is_group=address.is_group,
            policy=str(row["unknown_sender_policy"] or "strict"),
        )
        model.chats.append(chat)
        refs[str(row["id"])] = chat.ref
    return refs


def _wirings(model: SourceModel, conn: sqlite3.Connection, chats: dict[str, str]) -> None:
    wanted = [
        "messaging_group_id",
        "agent_group_id",
        "engage_mode",
        "engage_pattern",
        "sender_scope",
        "ignored_message_policy",
        "session_mode",
        "priority",
    ]
    for row in rows(conn, "messaging_group_agents", wanted):
        ref = chats.get(str(row["messaging_group_id"]))
        if ref is None:
            model.problems.append(
                ("wirings", f"wiring to unknown chat {row['messaging_group_id']}")
            )
            continue
        model.wirings.append(
            WiringSpec(
                agent_key=str(row["agent_group_id"]),
                chat_ref=ref,
                engage_mode=str(row["engage_mode"] or "mention"),
                engage_pattern=str(row["engage_pattern"]) if row["engage_pattern"] else None,
                session_mode=str(row["session_mode"] or "shared"),
                sender_scope=str(row["sender_scope"] or "all"),
                ignored_message_policy=str(row["ignored_message_policy"] or "drop"),
                priority=int(str(row["priority"] or 0)),
            )
        )


def _users(model: SourceModel, conn: sqlite3.Connection) -> None:
    for row in rows(conn, "users", ["id", "display_name"]):
        model.users.append(UserSpec(str(row["id"]), str(row["display_name"] or "") or None))
    for row in rows(conn, "user_roles", ["user_id", "role", "agent_group_id"]):
        ag = str(row["agent_group_id"]) if row["agent_group_id"] else None
        model.roles.append(RoleSpec(str(row["user_id"]), str(row["role"]), ag))
    for row in rows(conn, "agent_group_members", ["user_id", "agent_group_id"]):
        model.members.append((str(row["user_id"]), str(row["agent_group_id"])))


def _destinations(model: SourceModel, conn: sqlite3.Connection, chats: dict[str, str]) -> None:
    for row in rows(
        conn, "agent_destinations", ["agent_group_id", "local_name", "target_type", "target_id"]
    ):
        kind = str(row["target_type"])
        target = str(row["target_id"])
        if kind == "channel":
            target = chats.get(target, "")
            if not target:
                continue  # the wiring's own destination is re-created with the wiring
        model.destinations.append(
            DestinationSpec(str(row["agent_group_id"]), str(row["local_name"]), kind, target)
        )


def _configs(model: SourceModel, conn: sqlite3.Connection) -> None:
    by_key = {a.key: i for i, a in enumerate(model.agents)}
    wanted = [
        "agent_group_id",
        "cli_scope",
        "additional_mounts",
        "mcp_servers",
        "packages_apt",
        "packages_npm",
    ]
    for row in rows(conn, "container_configs", wanted):
        key = str(row["agent_group_id"])
        if key not in by_key:
            continue
        agent = model.agents[by_key[key]]
        mounts: tuple[dict[str, object], ...] = ()
        if row["additional_mounts"]:
            data = json.loads(str(row["additional_mounts"]))
            mounts = tuple(m for m in data if isinstance(m, dict))
        scope = str(row["cli_scope"]) if row["cli_scope"] else None
        model.agents[by_key[key]] = AgentSpec(
            key=agent.key,
            name=agent.name,
            folder=agent.folder,
            is_main=scope == "global",
            admin_scope=scope,
            mounts=mounts,
            memory_file=agent.memory_file,
        )
        for column in ("mcp_servers", "packages_apt", "packages_npm"):
            raw = str(row[column] or "").strip()
            if raw and raw not in ("{}", "[]"):
                model.todo.append(
                    f"agent {agent.name}: {column} {raw} was not imported; add it again"
                )


def _tasks(model: SourceModel, sessions: list[dict[str, object]], chats: dict[str, str]) -> None:
    """Pending and recurring ``kind=task`` rows of every session are the v2 install's tasks."""
    base = model.install.root / SESSIONS_DIR
    for session in sessions:
        ag, sess = str(session["agent_group_id"]), str(session["id"])
        db = base / ag / sess / "inbound.db"
        if not db.is_file():
            continue
        session_chat = chats.get(str(session["messaging_group_id"] or ""))
        with snapshot(db) as conn:
            wanted = [
                "id",
                "kind",
                "status",
                "process_after",
                "recurrence",
                "content",
                "series_id",
                "channel_type",
                "platform_id",
            ]
            for row in rows(conn, "messages_in", wanted):
                if row["kind"] != "task" or row["status"] not in ("pending", "paused"):
                    continue
                try:
                    content = json.loads(str(row["content"] or "{}"))
                except ValueError:
                    content = {"prompt": str(row["content"])}
                chat_ref = session_chat
                if row["channel_type"] and row["platform_id"]:
                    address = from_v2(str(row["channel_type"]), str(row["platform_id"]), True)
                    chat_ref = f"{address.channel}/{address.platform_id}"
                when = utc_or_none(row["process_after"])
                recurrence = str(row["recurrence"] or "").strip()
                model.tasks.append(
                    TaskSpec(
                        source_id=str(row["series_id"] or row["id"]),
                        agent_key=ag,
                        chat_ref=chat_ref,
                        prompt=str(content.get("prompt") or ""),
                        schedule=TaskSchedule.CRON if recurrence else TaskSchedule.ONCE,
                        value=recurrence or (when or ""),
                        next_run=when,
                        paused=row["status"] == "paused",
                        script=str(content["script"]) if content.get("script") else None,
                        timezone=model.timezone,
                    )
                )
