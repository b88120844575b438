"""Read a NanoClaw v1 install (``store/messages.db``, ``groups/``, ``.env``) into a ``SourceModel``."""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from datetime import datetime

from nanoclaw.importer.ids import from_v1_jid, v1_sender_user_id
from nanoclaw.importer.model import (
    AgentSpec,
    ChatSpec,
    SourceInstall,
    SourceModel,
    TaskSchedule,
    TaskSpec,
    UserSpec,
    WiringSpec,
)
from nanoclaw.importer.snapshot import read_step, rows, snapshot, start_model, utc_or_none

DEFAULT_ASSISTANT = "Andy"
MS_PER_S = 1000


def trigger_pattern(trigger: str | None, assistant: str) -> str:
    """v1's rule: the trigger text, case-insensitively, at the start of the message, as a word."""
    text = (trigger or "").strip() or f"@{assistant}"
    return f"(?i)^{re.escape(text)}\\b"


def read_v1(install: SourceInstall, *, now: datetime) -> SourceModel:
    model = start_model(install)
    assistant = model.env.get("ASSISTANT_NAME") or DEFAULT_ASSISTANT
    with snapshot(install.db_path) as conn:
        read_step(model, "groups", lambda: _groups(model, conn, assistant))
        read_step(model, "chats", lambda: _chats(model, conn))
        read_step(model, "senders", lambda: _senders(model, conn))
        read_step(model, "tasks", lambda: _tasks(model, conn, now=now))
    if model.env.get("ASSISTANT_HAS_OWN_NUMBER") is not None or any(
        c.channel == "whatsapp" for c in model.chats
    ):
        model.todo.append(
            "WhatsApp: the v1 login (store/auth/) cannot be carried to another WhatsApp library; "
            "link again with `nanoclaw channels add whatsapp`"
        )
    return model


def _groups(model: SourceModel, conn: sqlite3.Connection, assistant: str) -> None:
    wanted = [
        "jid",
        "name",
        "folder",
        "trigger_pattern",
        "container_config",
        "requires_trigger",
        "is_main",
    ]
    for row in rows(conn, "registered_groups", wanted):
        folder = str(row["folder"] or "").strip()
        jid = str(row["jid"] or "")
        if not folder or not jid:
            model.problems.append(("groups", f"a registered group without folder or jid: {row}"))
            continue
        mounts: tuple[dict[str, object], ...] = ()
        if row["container_config"]:
            try:
                config = json.loads(str(row["container_config"]))
                mounts = tuple(m for m in config.get("additionalMounts", []) if isinstance(m, dict))
            except (ValueError, AttributeError) as exc:
                model.problems.append(("groups", f"{folder}: container_config is not JSON ({exc})"))
        is_main = bool(row["is_main"]) or folder == "main"
        model.agents.append(
            AgentSpec(
                key=folder,
                # v1 had one assistant persona in every group: each agent carries its name.
                name=assistant,
                folder=folder,
                is_main=is_main,
                admin_scope="global" if is_main else None,
                mounts=mounts,
            )
        )
        address = from_v1_jid(jid)
        chat = ChatSpec(
            channel=address.channel,
            platform_id=address.platform_id,
            name=str(row["name"] or jid),
            is_group=address.is_group,
            # v1 answered anyone in a registered group: keep that, say so in the plan.
            policy="public",
        )
        if chat.ref not in {c.ref for c in model.chats}:
            model.chats.append(chat)
        requires = row["requires_trigger"]
        always = requires is not None and int(str(requires)) == 0
        model.wirings.append(
            WiringSpec(
                agent_key=folder,
                chat_ref=chat.ref,
                engage_mode="pattern",
                engage_pattern="."
                if always
                else trigger_pattern(str(row["trigger_pattern"] or ""), assistant),
            )
        )


def _chats(model: SourceModel, conn: sqlite3.Connection) -> None:
    """Chat names (and group-ness, when recorded) for the registered chats."""
    known = {c.ref: i for i, c in enumerate(model.chats)}
    for row in rows(conn, "chats", ["jid", "name", "is_group"]):
        address = from_v1_jid(str(row["jid"] or ""))
        ref = f"{address.channel}/{address.platform_id}"
        if ref in known and row["name"]:
            old = model.chats[known[ref]]
            model.chats[known[ref]] = ChatSpec(
                channel=old.channel,
                platform_id=old.platform_id,
                name=str(row["name"]),
                is_group=bool(row["is_group"]) if row["is_group"] is not None else old.is_group,
                policy=old.policy,
            )


def _senders(model: SourceModel, conn: sqlite3.Connection) -> None:
    """People seen in v1's messages (the owner is chosen among them), most active first."""
    counts: Counter[str] = Counter()
    names: dict[str, str] = {}
    for row in rows(
        conn,
        "messages",
        ["chat_jid", "sender", "sender_name", "is_from_me", "is_bot_message", "content"],
    ):
        if row["is_bot_message"] or not row["sender"]:
            continue
        channel = from_v1_jid(str(row["chat_jid"] or "")).channel
        user_id = v1_sender_user_id(channel, str(row["sender"]))
        counts[user_id] += 1
        if row["sender_name"]:
            names[user_id] = str(row["sender_name"])
    model.users = [UserSpec(u, names.get(u), n) for u, n in counts.most_common()]


def _tasks(model: SourceModel, conn: sqlite3.Connection, *, now: datetime) -> None:
    wanted = [
        "id",
        "group_folder",
        "chat_jid",
        "prompt",
        "schedule_type",
        "schedule_value",
        "next_run",
        "status",
        "context_mode",
        "script",
    ]
    for row in rows(conn, "scheduled_tasks", wanted):
        task_id = str(row["id"] or "")
        status = str(row["status"] or "active")
        if status == "completed":
            model.skipped_tasks.append((task_id, "completed in v1"))
            continue
        kind = str(row["schedule_type"] or "")
        value = str(row["schedule_value"] or "").strip()
        next_run = utc_or_none(row["next_run"])
        address = from_v1_jid(str(row["chat_jid"] or "")) if row["chat_jid"] else None
        try:
            schedule = TaskSchedule(kind)
        except ValueError:
            model.skipped_tasks.append((task_id, f"unknown schedule type {kind!r}"))
            continue
        if schedule is TaskSchedule.INTERVAL:
            try:
                value = str(int(float(value)) // MS_PER_S)  # v1 intervals are milliseconds
            except ValueError:
                model.skipped_tasks.append((task_id, f"interval {value!r} is not milliseconds"))
                continue
        elif schedule is TaskSchedule.ONCE:
            at = utc_or_none(value)
            if at is None:
                model.skipped_tasks.append((task_id, f"once task time {value!r} is not a time"))
                continue
            value = at
            next_run = next_run or at
        model.tasks.append(
            TaskSpec(
                source_id=task_id,
                agent_key=str(row["group_folder"] or ""),
                chat_ref=f"{address.channel}/{address.platform_id}" if address else None,
                prompt=str(row["prompt"] or ""),
                schedule=schedule,
                value=value,
                next_run=next_run,
                paused=status == "paused",
                script=str(row["script"]) if row["script"] else None,
                # v1's default is isolated; older rows without the column were isolated too.
                isolated=str(row["context_mode"] or "isolated") == "isolated",
                timezone=model.timezone,
            )
        )
