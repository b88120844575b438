"""Carry a ``SourceModel`` into this install through the admin service; planning is the same pass, dry."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from nanoclaw.admin.bootstrap import folder_for
from nanoclaw.admin.service import Actor, AdminService
from nanoclaw.contract.timeutil import parse_iso, to_iso
from nanoclaw.db.models import AgentGroup, MessagingGroup
from nanoclaw.errors import NanoclawError, NotFoundError, ValidationError
from nanoclaw.importer.envmap import apply_env_merge, plan_env_merge
from nanoclaw.importer.folders import copy_folder, merge_global
from nanoclaw.importer.ledger import Ledger
from nanoclaw.importer.model import (
    AgentSpec,
    ChatSpec,
    SourceModel,
    TaskSchedule,
    TaskSpec,
    WiringSpec,
)
from nanoclaw.importer.plan import Action, Plan
from nanoclaw.routing.engage import pattern_is_valid
from nanoclaw.runtime.mounts import MountRequest, load_allowlist, validate_mount
from nanoclaw.scheduling.cron import interval_expression, next_fire, validate_cron
from nanoclaw.scheduling.tasks import control_task, list_tasks
from nanoclaw.sessions.service import SessionService
from nanoclaw.sessions.store import InboundMessage
from nanoclaw.settings import Settings

CHANNEL_TOKENS = {
    "telegram": ("TELEGRAM_BOT_TOKEN",),
    "slack": ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"),
    "discord": ("DISCORD_BOT_TOKEN",),
}
OPERATOR = Actor.operator()
_T = TypeVar("_T")


def dotenv_path(settings: Settings) -> Path | None:
    """The dotenv file this install reads (``NANOCLAW_ENV_FILE``, else ``<root>/.env``)."""
    if "NANOCLAW_ENV_FILE" in os.environ:
        named = os.environ["NANOCLAW_ENV_FILE"]
        return Path(named) if named else None
    return settings.root / ".env"


def task_id_for(source_id: str) -> str:
    """A stable task id for a source task (so a second run finds it)."""
    clean = re.sub(r"[^A-Za-z0-9_-]+", "-", source_id).strip("-")[:40] or "task"
    digest = hashlib.sha1(source_id.encode()).hexdigest()[:8]
    return f"task-imp-{clean}-{digest}"


@dataclass
class Outcome:
    plan: Plan
    problems: list[tuple[str, str]] = field(default_factory=list)
    flagged: list[str] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)


class ImportRun:
    """One pass over the model: with ``execute=False`` it only plans (the ``--dry-run``)."""

    def __init__(
        self,
        *,
        settings: Settings,
        admin: AdminService,
        clock: Callable[[], datetime],
        owner: str | None,
        fire_missed: bool,
        execute: bool,
    ) -> None:
        self.settings = settings
        self.admin = admin
        self.repo = admin.repo
        self.clock = clock
        self.owner = owner
        self.fire_missed = fire_missed
        self._execute = execute
        self._out = Outcome(plan=Plan())

    def run(self, model: SourceModel) -> Outcome:
        """One pass; build a new ``ImportRun`` for another (the plan, then the import)."""
        out = self._out
        out.problems += model.problems
        out.todo += model.todo
        ledger = Ledger.load(self.settings.data_path, model.install)
        agents: dict[str, AgentGroup | None] = {}
        self._step("owner", self._owner, model)
        for spec in model.agents:
            agents[spec.key] = self._step(f"agent {spec.key}", self._agent, spec, ledger, model)
        self._step("shared instructions", self._global, model, ledger)
        chats: dict[str, MessagingGroup | None] = {}
        for chat in model.chats:
            chats[chat.ref] = self._step(f"chat {chat.ref}", self._chat, chat)
        for wiring in model.wirings:
            self._step(f"wiring {wiring.chat_ref}", self._wiring, wiring, agents, chats)
        self._step("users", self._users, model, agents)
        self._step("destinations", self._destinations, model, agents)
        for task in model.tasks:
            self._step(f"task {task.source_id}", self._task, task, agents, chats)
        for task_id, why in model.skipped_tasks:
            out.plan.add("task", task_id, Action.SKIP, why)
        self._step("env", self._env, model)
        if self._execute:
            ledger.save()
        return out

    # -- plumbing ----------------------------------------------------------------------------
    def _step(self, name: str, fn: Callable[..., _T], *args: Any) -> _T | None:
        """A step that fails is recorded; the others still run (the import never aborts)."""
        try:
            return fn(*args)
        except (NanoclawError, OSError, ValueError, KeyError, TypeError) as exc:
            self._out.problems.append((name, f"{type(exc).__name__}: {exc}"))
            self._out.plan.add(name.split(" ")[0], name, Action.SKIP, f"failed: {exc}")
            return None

    def _add(self, what: str, key: str, action: Action, detail: str = "") -> None:
        self._out.plan.add(what, key, action, detail)

    # -- owner -------------------------------------------------------------------------------
    def _owner(self, model: SourceModel) -> None:
        source_owner = next((r.user_id for r in model.roles if r.role == "owner"), None)
        owner = self.owner or source_owner
        if self.repo.has_owner():
            membership = self.repo.membership(owner) if owner else None
            if owner and membership and any(r == "owner" for r, _ in membership.roles):
                self._add("owner", owner, Action.REUSE, "already the owner here")
            else:
                self._add("owner", "(existing)", Action.REUSE, "this install already has an owner")
            return
        if owner is None:
            self._add(
                "owner", "(none)", Action.NEEDS_USER, "choose one with --owner CHANNEL:HANDLE"
            )
            return
        if ":" not in owner:
            raise ValidationError(
                f"name the owner as <channel>:<handle>, not {owner!r}", field="owner"
            )
        self._add("owner", owner, Action.CREATE, "owner role (global)")
        if self._execute:
            channel = owner.split(":", 1)[0]
            name = next((u.display_name for u in model.users if u.user_id == owner), None)
            self.repo.upsert_user(owner, kind=channel, display_name=name)
            self.repo.grant_role(owner, "owner", granted_by="import")

    # -- agents ------------------------------------------------------------------------------
    def _agent(self, spec: AgentSpec, ledger: Ledger, model: SourceModel) -> AgentGroup | None:
        group: AgentGroup | None = None
        known = ledger.agents.get(spec.key)
        if known:
            try:
                group = self.repo.agent_group(known)
            except NotFoundError:
                group = None
        if group is not None:
            self._add("agent", spec.name, Action.REUSE, f"groups/{group.folder}")
        else:
            folder = folder_for(spec.folder)
            self._add(
                "agent", spec.name, Action.CREATE, f"folder groups/{folder} (from {spec.folder})"
            )
            if not self._execute:
                return None
            group = self.admin.create_agent(OPERATOR, spec.name, folder)
            ledger.agents[spec.key] = group.id
        if spec.admin_scope and self._execute:
            self.admin.store.update_agent_group(group.id, admin_scope=spec.admin_scope)
        self._mounts(spec, group)
        self._folder(spec, group, model)
        return group

    def _mounts(self, spec: AgentSpec, group: AgentGroup) -> None:
        if not spec.mounts:
            return
        allowlist = load_allowlist(
            self.settings.mount_allowlist_path, project_root=self.settings.root
        )
        accepted: list[dict[str, object]] = []
        for raw in spec.mounts:
            try:
                request = MountRequest.parse(raw)
                validate_mount(
                    request, allowlist, protected=[self.settings.root, self.settings.data_path]
                )
            except ValidationError as exc:
                self._add("mount", f"{spec.name}: {raw.get('hostPath')}", Action.SKIP, str(exc))
                continue
            accepted.append(
                {
                    "hostPath": request.host_path,
                    "containerPath": request.container_path,
                    "readonly": request.read_only,
                }
            )
            self._add(
                "mount",
                f"{spec.name}: {request.host_path}",
                Action.CREATE,
                "allowed by the mount allowlist",
            )
        if accepted and self._execute:
            self.admin.store.set_additional_mounts(group.id, json.dumps(accepted))

    def _folder(self, spec: AgentSpec, group: AgentGroup, model: SourceModel) -> None:
        source = model.install.root / "groups" / spec.folder
        if not source.is_dir():
            self._add("folder", spec.folder, Action.SKIP, "no folder in the source")
            return
        target = self.settings.groups_path / group.folder
        if not self._execute:
            self._add(
                "folder",
                f"{spec.folder} → groups/{group.folder}",
                Action.CREATE,
                f"copy files not already here; {spec.memory_file} becomes CLAUDE.local.md",
            )
            return
        copied = copy_folder(source, target, memory_file=spec.memory_file)
        action = Action.CREATE if copied.copied else Action.REUSE
        self._add(
            "folder",
            f"{spec.folder} → groups/{group.folder}",
            action,
            f"{len(copied.copied)} copied, {len(copied.kept)} already here, "
            f"{len(copied.skipped)} skipped",
        )
        self._out.flagged += [f"groups/{group.folder}/{f}" for f in copied.flagged]
        self._out.problems += [
            (f"folder {spec.folder}", s) for s in copied.skipped if "source-only" not in s
        ]

    def _global(self, model: SourceModel, ledger: Ledger) -> None:
        source = model.install.root / "groups" / "global" / "CLAUDE.md"
        if not source.is_file():
            return
        target = self.settings.groups_path / "global" / "CLAUDE.md"
        if ledger.global_md:
            self._add(
                "instructions",
                "groups/global/CLAUDE.md",
                Action.REUSE,
                "added by an earlier import",
            )
            return
        self._add(
            "instructions",
            "groups/global/CLAUDE.md",
            Action.CREATE,
            "the source's shared instructions, in a marked section",
        )
        if self._execute:
            merge_global(source, target, kind=model.install.kind.value)
            ledger.global_md = True

    # -- chats and wirings -------------------------------------------------------------------
    def _chat(self, chat: ChatSpec) -> MessagingGroup | None:
        found = self.repo.messaging_group(chat.channel, chat.platform_id)
        if found is not None:
            self._add("chat", chat.ref, Action.REUSE, found.name or "")
            return found
        self._add("chat", chat.ref, Action.CREATE, f"{chat.name} (policy {chat.policy})")
        if not self._execute:
            return None
        return self.repo.ensure_messaging_group(
            channel_type=chat.channel,
            platform_id=chat.platform_id,
            name=chat.name,
            is_group=chat.is_group,
            unknown_sender_policy=chat.policy,
        )

    def _wiring(
        self,
        wiring: WiringSpec,
        agents: dict[str, AgentGroup | None],
        chats: dict[str, MessagingGroup | None],
    ) -> None:
        agent, chat = agents.get(wiring.agent_key), chats.get(wiring.chat_ref)
        mode, pattern = wiring.engage_mode, wiring.engage_pattern
        detail = f"{mode} {pattern or ''}".strip()
        if mode == "pattern" and (not pattern or not pattern_is_valid(pattern)):
            self._add(
                "wiring",
                f"{wiring.chat_ref} → {wiring.agent_key}",
                Action.NEEDS_USER,
                f"engage pattern {pattern!r} is not accepted here; wired as mention instead",
            )
            mode, pattern = "mention", None
        if (
            agent is not None
            and chat is not None
            and self.admin.store.find_wiring(chat.id, agent.id)
        ):
            self._add("wiring", f"{wiring.chat_ref} → {agent.name}", Action.REUSE, detail)
            return
        self._add(
            "wiring",
            f"{wiring.chat_ref} → {agent.name if agent else wiring.agent_key}",
            Action.CREATE,
            detail,
        )
        if not self._execute or agent is None or chat is None:
            return
        self.admin.wire(
            OPERATOR,
            chat,
            agent,
            engage_mode=mode,
            engage_pattern=pattern,
            session_mode=wiring.session_mode,
            sender_scope=wiring.sender_scope,
            ignored_message_policy=wiring.ignored_message_policy,
            priority=wiring.priority,
        )

    # -- users, roles, members, destinations -------------------------------------------------
    def _users(self, model: SourceModel, agents: dict[str, AgentGroup | None]) -> None:
        known = {u.id for u in self.admin.store.users()}
        for user in model.users:
            if not model.roles and user.user_id != self.owner:
                continue  # v1 senders are listed for the owner choice, not imported as users
            action = Action.REUSE if user.user_id in known else Action.CREATE
            self._add("user", user.user_id, action, user.display_name or "")
            if self._execute and action is Action.CREATE:
                self.repo.upsert_user(
                    user.user_id, kind=user.user_id.split(":", 1)[0], display_name=user.display_name
                )
        for role in model.roles:
            if role.role == "owner":
                continue  # handled by the owner step
            group = agents.get(role.agent_key) if role.agent_key else None
            if role.agent_key and group is None and self._execute:
                continue
            key = f"{role.user_id} {role.role}" + (
                f" of {group.name if group else role.agent_key}" if role.agent_key else " (global)"
            )
            membership = self.repo.membership(role.user_id)
            held = membership is not None and (role.role, group.id if group else None) in (
                membership.roles
            )
            self._add("role", key, Action.REUSE if held else Action.CREATE)
            if self._execute and not held:
                self.repo.upsert_user(
                    role.user_id, kind=role.user_id.split(":", 1)[0], display_name=None
                )
                self.repo.grant_role(
                    role.user_id,
                    role.role,
                    agent_group_id=group.id if group else None,
                    granted_by="import",
                )
        for user_id, agent_key in model.members:
            group = agents.get(agent_key)
            membership = self.repo.membership(user_id)
            held = membership is not None and group is not None and group.id in membership.member_of
            label = f"{user_id} of {group.name if group else agent_key}"
            self._add("member", label, Action.REUSE if held else Action.CREATE)
            if self._execute and group is not None and not held:
                self.repo.upsert_user(user_id, kind=user_id.split(":", 1)[0], display_name=None)
                self.repo.add_member(user_id, group.id, added_by="import")

    def _destinations(self, model: SourceModel, agents: dict[str, AgentGroup | None]) -> None:
        for dest in model.destinations:
            group = agents.get(dest.agent_key)
            if dest.target_type != "agent":
                continue  # channel destinations come with their wirings
            target = agents.get(dest.target)
            label = f"{group.name if group else dest.agent_key} → {dest.name}"
            present = group is not None and any(
                d.target_type == "agent" and target is not None and d.target_id == target.id
                for d in self.repo.destinations(group.id)
            )
            self._add("destination", label, Action.REUSE if present else Action.CREATE)
            if self._execute and group is not None and target is not None and not present:
                self.repo.add_agent_destination(
                    agent_group_id=group.id, name=dest.name, target_id=target.id
                )

    # -- tasks -------------------------------------------------------------------------------
    def _task(
        self,
        task: TaskSpec,
        agents: dict[str, AgentGroup | None],
        chats: dict[str, MessagingGroup | None],
    ) -> None:
        now = self.clock()
        tz = task.timezone or self.settings.timezone
        tid = task_id_for(task.source_id)
        label = f"{task.source_id} ({task.schedule.value} {task.value})"
        if task.schedule is TaskSchedule.CRON:
            recurrence: str | None = validate_cron(task.value)
            when = task.next_run or to_iso(next_fire(task.value, tz, now))
        elif task.schedule is TaskSchedule.INTERVAL:
            seconds = int(task.value)
            recurrence = validate_cron(interval_expression(seconds))
            when = task.next_run or to_iso(now + timedelta(seconds=seconds))
        else:
            recurrence = None
            when = task.next_run or task.value
            if parse_iso(when) <= now:
                if not self.fire_missed:
                    self._add(
                        "task",
                        label,
                        Action.SKIP,
                        f"its time {when} has passed (--fire-missed runs it now)",
                    )
                    return
                when = to_iso(now)
        agent = agents.get(task.agent_key)
        chat = chats.get(task.chat_ref) if task.chat_ref else None
        if self._execute and (agent is None or chat is None):
            raise ValidationError(
                f"task {task.source_id}: its agent or chat was not imported", field="task"
            )
        if agent is not None and chat is not None and self._has_task(agent, chat, tid):
            self._add("task", label, Action.REUSE, f"as {tid}")
            return
        detail = (
            f"as {tid}, first run {when} UTC"
            + (", paused" if task.paused else "")
            + (", fresh context" if task.isolated else "")
            + (", with its script" if task.script else "")
        )
        self._add("task", label, Action.CREATE, detail)
        if not self._execute or agent is None or chat is None:
            return
        content: dict[str, object] = {"prompt": task.prompt}
        if task.script:
            content["script"] = task.script
        if task.isolated:
            content["context_mode"] = "isolated"
        service = self._sessions()
        mode = self._session_mode(agent, chat)
        _, layout = service.resolve(
            agent_group_id=agent.id, messaging_group_id=chat.id, thread_id=None, mode=mode
        )
        service.store.insert_messages(
            layout,
            [
                InboundMessage(
                    id=tid,
                    kind="task",
                    content=content,
                    channel_type=chat.channel_type,
                    platform_id=chat.platform_id,
                    trigger=1,
                    process_after=when,
                    recurrence=recurrence,
                    series_id=tid,
                    recurrence_tz=tz if recurrence else None,
                )
            ],
        )
        if task.paused:
            control_task(service.store, layout, tid, "pause")

    def _sessions(self) -> SessionService:
        service = self.admin.session_service
        if service is None:
            raise ValidationError("the import needs the session service", field="sessions")
        return service

    def _session_mode(self, agent: AgentGroup, chat: MessagingGroup) -> str:
        wiring = self.admin.store.find_wiring(chat.id, agent.id)
        return wiring.session_mode if wiring is not None else "shared"

    def _has_task(self, agent: AgentGroup, chat: MessagingGroup, tid: str) -> bool:
        """Whether an earlier import already put this series into the agent's session."""
        service = self._sessions()
        session = self.repo.find_session(
            agent_group_id=agent.id,
            messaging_group_id=chat.id,
            thread_id=None,
            mode=self._session_mode(agent, chat),
        )
        if session is None:
            return False
        rows = list_tasks(service.store, service.layout(session), include_ended=True)
        return any(t.series_id == tid or t.id == tid for t in rows)

    # -- env ---------------------------------------------------------------------------------
    def _env(self, model: SourceModel) -> None:
        target = dotenv_path(self.settings)
        if target is None:
            if model.env:
                self._add(
                    "setting", ".env", Action.SKIP, "no .env in use (NANOCLAW_ENV_FILE is empty)"
                )
            return
        merge = plan_env_merge(model.env, target)
        for name in merge.added:
            self._add("setting", name, Action.CREATE, "into .env (value not shown)")
        for name in merge.kept:
            self._add("setting", name, Action.REUSE, "already set here; left alone")
        for name in merge.unsupported:
            self._add("setting", name, Action.SKIP, "not supported here; not copied")
        if self._execute:
            apply_env_merge(merge, target)
        have = set(merge.added) | set(merge.kept)
        for channel in sorted({c.channel for c in model.chats}):
            missing = [t for t in CHANNEL_TOKENS.get(channel, ()) if t not in have]
            if missing:
                self._out.todo.append(
                    f"{channel}: add {', '.join(missing)} (`nanoclaw channels add {channel}`)"
                )
        if have & {t for tokens in CHANNEL_TOKENS.values() for t in tokens}:
            self._out.todo.append(
                "stop the old NanoClaw service (launchd com.nanoclaw or its systemd unit) so two "
                "hosts do not poll the same bots"
            )
