"""The admin operations shared by chat commands, the ``nanoclaw`` CLI and admin-scoped agents.

Every operation takes an ``Actor`` and checks it here, in one place:
- the host operator (the CLI on the host) may do everything;
- a user acts by their roles: owners and global admins on everything, a scoped admin on
  their agent groups only (reads are filtered, writes refused elsewhere);
- an agent reads within its admin scope (``disabled``/``group``/``global``) and never
  writes directly: its writes become approval cards (``permissions/agent_admin.py``).
Results are ``Table`` values that the chat renders as text and the CLI as rich tables or JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from nanoclaw.admin.bootstrap import CLAUDE_MD_TEMPLATE, ensure_memory_file, folder_for
from nanoclaw.admin.store import AdminStore
from nanoclaw.contract.runner_config import CONTAINER_EXTRA_DIR
from nanoclaw.db.models import AgentGroup, MessagingGroup, PendingApproval, SessionRow
from nanoclaw.db.repository import Membership, Repository, normalize_destination_name
from nanoclaw.errors import NotFoundError, PermissionDeniedError, ValidationError
from nanoclaw.permissions.access import (
    admin_groups,
    can_answer,
    can_grant,
    is_admin_of,
    is_global_privileged,
    scope_allows,
)
from nanoclaw.routing.modes import ENGAGE_MODES as ENGAGE_MODES
from nanoclaw.routing.modes import SESSION_MODES as SESSION_MODES
from nanoclaw.routing.user_regex import check_user_pattern
from nanoclaw.runtime.liveness import LivenessOf, RunnerLiveness
from nanoclaw.runtime.mounts import MountPolicy, MountRequest
from nanoclaw.sessions.restart import request_restart
from nanoclaw.sessions.service import SessionService

POLICIES = ("strict", "request_approval", "public")
ROLES = ("owner", "admin")


@dataclass(frozen=True)
class Actor:
    kind: Literal["operator", "user", "agent"]
    user_id: str | None = None
    membership: Membership | None = None
    agent_group_id: str | None = None
    scope: str = "group"

    @classmethod
    def operator(cls) -> Actor:
        return cls(kind="operator", user_id="operator")

    @classmethod
    def user(cls, membership: Membership | None, user_id: str | None = None) -> Actor:
        return cls(
            kind="user",
            user_id=user_id or (membership.user_id if membership else None),
            membership=membership,
        )

    @classmethod
    def agent(cls, agent_group_id: str, scope: str) -> Actor:
        return cls(kind="agent", agent_group_id=agent_group_id, scope=scope)

    @property
    def label(self) -> str:
        if self.kind == "agent":
            return f"agent:{self.agent_group_id}"
        return self.user_id or self.kind

    def can_read(self, agent_group_id: str | None) -> bool:
        """``agent_group_id`` None = something global (users, roles, unwired chats)."""
        if self.kind == "operator":
            return True
        if self.kind == "agent":
            assert self.agent_group_id is not None
            return scope_allows(
                self.scope, own_group=self.agent_group_id, target_group=agent_group_id
            )
        if agent_group_id is None:
            return is_global_privileged(self.membership)
        return is_admin_of(self.membership, agent_group_id)

    def can_write(self, agent_group_id: str | None) -> bool:
        if self.kind == "operator":
            return True
        if self.kind == "agent":
            return False  # agents request writes through approval cards
        if agent_group_id is None:
            return is_global_privileged(self.membership)
        return is_admin_of(self.membership, agent_group_id)


@dataclass
class Table:
    columns: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    title: str = ""

    def as_text(self, *, limit: int = 50) -> str:
        if not self.rows:
            return f"{self.title}: (none)" if self.title else "(none)"
        lines = [f"{self.title} ({len(self.rows)}):"] if self.title else []
        for row in self.rows[:limit]:
            cells = [
                f"{c}={_cell(row.get(c))}" for c in self.columns if row.get(c) not in (None, "")
            ]
            lines.append("• " + "  ".join(cells))
        if len(self.rows) > limit:
            lines.append(f"… and {len(self.rows) - limit} more")
        return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


def deny(actor: Actor, action: str, what: str) -> PermissionDeniedError:
    return PermissionDeniedError(
        f"permission denied: {action} {what} needs admin rights there",
        user_id=actor.user_id,
        action=action,
    )


def create_agent_files(
    repo: Repository, groups_path: Path, name: str, folder: str | None = None
) -> AgentGroup:
    """Create an agent group with a unique folder confined to ``groups/`` and its memory files."""
    name = name.strip()
    if not name or len(name) > 64:
        raise ValidationError("an agent name needs 1–64 characters", field="name")
    base = folder or folder_for(name)
    taken = {g.folder.lower() for g in repo.agent_groups()}
    candidate, n = base, 2
    while candidate.lower() in taken or candidate.lower() == "global":
        candidate, n = f"{base[:60]}-{n}", n + 1
    group = repo.create_agent_group(name=name, folder=candidate, assistant_name=name)
    group_dir = groups_path / group.folder
    if group_dir.resolve().parent != groups_path.resolve():
        raise ValidationError(f"agent folder {group.folder!r} leaves groups/", field="folder")
    groups_path.mkdir(parents=True, exist_ok=True)
    ensure_memory_file(groups_path, group.folder, "CLAUDE.md", CLAUDE_MD_TEMPLATE.format(name=name))
    ensure_memory_file(groups_path, group.folder, "CLAUDE.local.md", "")
    return group


class AdminService:
    def __init__(
        self,
        *,
        repo: Repository,
        store: AdminStore,
        groups_path: Path,
        sessions: SessionService | None = None,
        mount_policy: MountPolicy | None = None,
        liveness: LivenessOf | None = None,
    ) -> None:
        self.repo = repo
        # In the host: the supervisor's answer; elsewhere (the CLI) its copy published in the
        # central DB (``sessions.runner_status``).
        self.liveness = liveness
        self.store = store
        self.groups_path = groups_path
        self.mount_policy = mount_policy  # None: extra mounts cannot be added here
        # Tasks live in each session's inbound.db; wiring changes re-project destinations there.
        self.session_service = sessions

    # -- lookups -------------------------------------------------------------------------------
    def agent(self, key: str) -> AgentGroup:
        return self.repo.agent_group(key)

    def chat(
        self, ref: str, *, default_channel: str | None = None, create: bool = False
    ) -> MessagingGroup:
        """A chat by id (``mg-…``), ``<channel>/<platform id>``, or an id on ``default_channel``."""
        if ref.startswith("mg-"):
            mg = self.repo.messaging_group_by_id(ref)
            if mg is None:
                raise NotFoundError("chat", ref)
            return mg
        if "/" in ref:
            channel, platform_id = ref.split("/", 1)
        elif default_channel:
            channel, platform_id = default_channel, ref
        else:
            raise ValidationError(f"name the chat as <channel>/<id>, not {ref!r}", field="chat")
        mg = self.repo.messaging_group(channel, platform_id)
        if mg is None:
            if not create:
                raise NotFoundError("chat", f"{channel}/{platform_id}")
            mg = self.repo.ensure_messaging_group(
                channel_type=channel,
                platform_id=platform_id,
                name=platform_id,
                unknown_sender_policy="public" if channel == "cli" else "strict",
            )
        return mg

    def user_ref(self, ref: str, *, default_channel: str | None = None) -> str:
        if ":" in ref:
            return ref
        if default_channel:
            return f"{default_channel}:{ref}"
        raise ValidationError(f"name the user as <channel>:<handle>, not {ref!r}", field="user")

    def _wired_groups(self, mg_id: str) -> list[str]:
        return [w.agent_group_id for w in self.repo.wirings_for(mg_id)]

    def _chat_readable(self, actor: Actor, mg: MessagingGroup) -> bool:
        groups = self._wired_groups(mg.id)
        if not groups:
            return actor.can_read(None)
        return any(actor.can_read(g) for g in groups)

    def _chat_writable(self, actor: Actor, mg: MessagingGroup) -> bool:
        groups = self._wired_groups(mg.id)
        if not groups:
            return actor.can_write(None)
        return all(actor.can_write(g) for g in groups)

    # -- status --------------------------------------------------------------------------------
    def status(self, actor: Actor) -> dict[str, Any]:
        agents = self.agents(actor).rows
        sessions = self.sessions(actor).rows
        return {
            "agents": len(agents),
            "chats": len(self.channels(actor).rows),
            "wirings": len(self.wirings(actor).rows),
            "sessions": len(sessions),
            "running": sum(1 for s in sessions if s["runner"] == "running"),
            "pending_approvals": len(self.approvals(actor).rows),
        }

    # -- agents --------------------------------------------------------------------------------
    def agents(self, actor: Actor) -> Table:
        table = Table(["name", "folder", "admin_scope", "wirings", "id"], title="Agents")
        wirings = self.repo.wirings()
        for g in self.repo.agent_groups():
            if not actor.can_read(g.id):
                continue
            table.rows.append(
                {
                    "name": g.name,
                    "folder": g.folder,
                    "admin_scope": self.store.admin_scope(g.id),
                    "wirings": sum(1 for w in wirings if w.agent_group_id == g.id),
                    "id": g.id,
                }
            )
        return table

    def create_agent(self, actor: Actor, name: str, folder: str | None = None) -> AgentGroup:
        if not actor.can_write(None):
            raise deny(actor, "create", "an agent")
        return create_agent_files(self.repo, self.groups_path, name, folder)

    def update_agent(
        self, actor: Actor, key: str, *, name: str | None = None, admin_scope: str | None = None
    ) -> AgentGroup:
        group = self.agent(key)
        if not actor.can_write(group.id):
            raise deny(actor, "update", f"agent {group.name}")
        if admin_scope is not None and not (
            actor.kind == "operator" or is_global_privileged(actor.membership)
        ):
            raise deny(actor, "change the admin scope of", f"agent {group.name}")
        self.store.update_agent_group(group.id, name=name, admin_scope=admin_scope)
        return self.agent(group.id)

    def delete_agent(self, actor: Actor, key: str) -> AgentGroup:
        group = self.agent(key)
        if not actor.can_write(None):
            raise deny(actor, "delete", f"agent {group.name}")
        self.store.delete_agent_group(group.id)
        return group

    # -- chats ---------------------------------------------------------------------------------
    def channels(self, actor: Actor) -> Table:
        table = Table(["chat", "name", "policy", "agents", "denied", "id"], title="Chats")
        names = {g.id: g.name for g in self.repo.agent_groups()}
        for mg in self.repo.messaging_groups():
            if not self._chat_readable(actor, mg):
                continue
            table.rows.append(
                {
                    "chat": f"{mg.channel_type}/{mg.platform_id}",
                    "name": mg.name,
                    "policy": mg.unknown_sender_policy,
                    "agents": [names.get(g, g) for g in self._wired_groups(mg.id)],
                    "denied": "yes" if mg.denied_at else "",
                    "id": mg.id,
                }
            )
        return table

    def set_policy(self, actor: Actor, chat: MessagingGroup, policy: str) -> None:
        if policy not in POLICIES:
            raise ValidationError(
                f"unknown policy {policy!r}; use one of {', '.join(POLICIES)}", field="policy"
            )
        if not self._chat_writable(actor, chat):
            raise deny(actor, "set the policy of", f"{chat.channel_type}/{chat.platform_id}")
        self.store.set_policy(chat.id, policy)

    def update_chat(
        self,
        actor: Actor,
        chat: MessagingGroup,
        *,
        name: str | None = None,
        denied: bool | None = None,
    ) -> None:
        if not self._chat_writable(actor, chat):
            raise deny(actor, "update", f"{chat.channel_type}/{chat.platform_id}")
        if name:
            self.store.rename_messaging_group(chat.id, name)
        if denied is not None:
            self.store.set_denied(chat.id, denied)

    def delete_chat(self, actor: Actor, chat: MessagingGroup) -> None:
        if not actor.can_write(None):
            raise deny(actor, "delete", f"{chat.channel_type}/{chat.platform_id}")
        self.store.delete_messaging_group(chat.id)

    # -- wirings -------------------------------------------------------------------------------
    def wirings(self, actor: Actor) -> Table:
        table = Table(
            [
                "chat",
                "agent",
                "engage",
                "pattern",
                "session_mode",
                "sender_scope",
                "ignored",
                "priority",
                "id",
            ],
            title="Wirings",
        )
        names = {g.id: g.name for g in self.repo.agent_groups()}
        mgs = {m.id: m for m in self.repo.messaging_groups()}
        for w in self.repo.wirings():
            if not actor.can_read(w.agent_group_id):
                continue
            mg = mgs.get(w.messaging_group_id)
            table.rows.append(
                {
                    "chat": f"{mg.channel_type}/{mg.platform_id}" if mg else w.messaging_group_id,
                    "agent": names.get(w.agent_group_id, w.agent_group_id),
                    "engage": w.engage_mode,
                    "pattern": w.engage_pattern,
                    "session_mode": w.session_mode,
                    "sender_scope": w.sender_scope,
                    "ignored": w.ignored_message_policy,
                    "priority": w.priority,
                    "id": w.id,
                }
            )
        return table

    def wire(
        self,
        actor: Actor,
        chat: MessagingGroup,
        agent: AgentGroup,
        *,
        engage_mode: str = "pattern",
        engage_pattern: str | None = ".",
        session_mode: str = "shared",
        sender_scope: str = "all",
        ignored_message_policy: str = "drop",
        priority: int = 0,
    ) -> str:
        if not actor.can_write(agent.id):
            raise deny(actor, "wire", f"agent {agent.name}")
        check_wiring_options(engage_mode, engage_pattern, session_mode)
        wiring = self.repo.create_wiring(
            messaging_group_id=chat.id,
            agent_group_id=agent.id,
            engage_mode=engage_mode,
            engage_pattern=engage_pattern if engage_mode == "pattern" else None,
            session_mode=session_mode,
            sender_scope=sender_scope,
            ignored_message_policy=ignored_message_policy,
            priority=priority,
        )
        if chat.denied_at is not None:
            self.store.set_denied(chat.id, False)
        self._reproject(agent.id)
        return wiring.id

    def _reproject(self, agent_group_id: str) -> None:
        if self.session_service is not None:
            self.session_service.project_agent(agent_group_id)

    def unwire(self, actor: Actor, chat: MessagingGroup, agent: AgentGroup) -> None:
        if not actor.can_write(agent.id):
            raise deny(actor, "unwire", f"agent {agent.name}")
        wiring = self.store.find_wiring(chat.id, agent.id)
        if wiring is None:
            raise NotFoundError("wiring", f"{chat.channel_type}/{chat.platform_id} → {agent.name}")
        self.repo.delete_wiring(wiring.id)
        self._reproject(agent.id)

    def update_wiring(
        self, actor: Actor, chat: MessagingGroup, agent: AgentGroup, **fields: Any
    ) -> None:
        if not actor.can_write(agent.id):
            raise deny(actor, "change the wiring of", f"agent {agent.name}")
        wiring = self.store.find_wiring(chat.id, agent.id)
        if wiring is None:
            raise NotFoundError("wiring", f"{chat.channel_type}/{chat.platform_id} → {agent.name}")
        if "engage_mode" in fields:
            _check_engage(fields["engage_mode"], fields.get("engage_pattern"))
            if fields["engage_mode"] != "pattern":
                fields["engage_pattern"] = None
        if "session_mode" in fields and fields["session_mode"] not in SESSION_MODES:
            raise ValidationError(
                f"unknown session mode {fields['session_mode']!r}", field="session_mode"
            )
        self.store.update_wiring(wiring.id, **fields)

    def delete_wiring(self, actor: Actor, wiring_id: str) -> None:
        wiring = self.store.wiring(wiring_id)
        if wiring is None:
            raise NotFoundError("wiring", wiring_id)
        if not actor.can_write(wiring.agent_group_id):
            raise deny(actor, "delete", f"wiring {wiring_id}")
        self.repo.delete_wiring(wiring_id)
        self._reproject(wiring.agent_group_id)

    # -- destinations (name map and ACL of an agent; re-projected into its live sessions) -------
    def destinations(self, actor: Actor, agent: AgentGroup) -> Table:
        if not actor.can_read(agent.id):
            raise deny(actor, "list the destinations of", f"agent {agent.name}")
        table = Table(
            ["name", "type", "target", "target_id"], title=f"Destinations of {agent.name}"
        )
        names = {g.id: g.name for g in self.repo.agent_groups()}
        for d in self.repo.destinations(agent.id):
            if d.target_type == "agent":
                target = f"agent {names.get(d.target_id, d.target_id)}"
            else:
                mg = self.repo.messaging_group_by_id(d.target_id)
                target = f"{mg.channel_type}/{mg.platform_id}" if mg else "(missing chat)"
            table.rows.append(
                {"name": d.local_name, "type": d.target_type, "target": target,
                 "target_id": d.target_id}
            )  # fmt: skip
        return table

    def add_destination(
        self,
        actor: Actor,
        agent: AgentGroup,
        name: str,
        *,
        target_agent: AgentGroup | None = None,
        target_chat: MessagingGroup | None = None,
    ) -> str:
        """Link an agent to another agent or to a chat under ``name``; returns the stored name.

        The link is a permission (the agent may send there), so the actor must be able to
        write both ends: the agent, and the other agent or every agent wired to the chat.
        """
        if (target_agent is None) == (target_chat is None):
            raise ValidationError("name exactly one target: an agent or a chat", field="target")
        if not actor.can_write(agent.id):
            raise deny(actor, "add destinations to", f"agent {agent.name}")
        local = normalize_destination_name(name)
        if target_agent is not None:
            if not actor.can_write(target_agent.id):
                raise deny(actor, "link to", f"agent {target_agent.name}")
            self.store.add_destination(
                agent.id, local, target_type="agent", target_id=target_agent.id
            )
        else:
            assert target_chat is not None
            wired_here = agent.id in self._wired_groups(target_chat.id)
            if not wired_here and not self._chat_writable(actor, target_chat):
                where = f"{target_chat.channel_type}/{target_chat.platform_id}"
                raise deny(actor, "link an agent to", where)
            self.store.add_destination(
                agent.id, local, target_type="channel", target_id=target_chat.id
            )
        self._reproject(agent.id)
        return local

    def remove_destination(self, actor: Actor, agent: AgentGroup, name: str) -> None:
        if not actor.can_write(agent.id):
            raise deny(actor, "remove destinations of", f"agent {agent.name}")
        if not self.store.remove_destination(agent.id, normalize_destination_name(name)):
            raise NotFoundError("destination", f"{name} of {agent.name}")
        self._reproject(agent.id)

    # -- extra mounts (validated against the allowlist now, and again at every start) ----------
    def mounts(self, actor: Actor, agent: AgentGroup) -> Table:
        if not actor.can_read(agent.id):
            raise deny(actor, "list the mounts of", f"agent {agent.name}")
        table = Table(["hostPath", "containerPath", "readonly"], title=f"Mounts of {agent.name}")
        table.rows = self.store.additional_mounts(agent.id)
        return table

    def add_mount(
        self,
        actor: Actor,
        agent: AgentGroup,
        host_path: str,
        *,
        container_path: str | None = None,
        read_write: bool = False,
    ) -> dict[str, Any]:
        """Record an extra mount (effective at the agent's next start); returns what was stored."""
        if not actor.can_write(agent.id):
            raise deny(actor, "add mounts to", f"agent {agent.name}")
        if self.mount_policy is None:
            raise ValidationError("extra mounts cannot be added here", field="hostPath")
        request = MountRequest(host_path, container_path, read_only=not read_write)
        mount = self.mount_policy.check(request)  # raises with the allowlist's reason
        target = mount.target.removeprefix(CONTAINER_EXTRA_DIR + "/")
        entry = {"hostPath": str(mount.source), "containerPath": target,
                 "readonly": mount.read_only}  # fmt: skip
        current = self.store.additional_mounts(agent.id)
        if any(m.get("containerPath") == target for m in current):
            raise ValidationError(f"a mount at {target!r} exists", field="containerPath")
        self.store.set_additional_mounts(agent.id, json.dumps([*current, entry]))
        return entry

    def remove_mount(self, actor: Actor, agent: AgentGroup, container_path: str) -> None:
        if not actor.can_write(agent.id):
            raise deny(actor, "remove mounts of", f"agent {agent.name}")
        current = self.store.additional_mounts(agent.id)
        kept = [m for m in current if m.get("containerPath") != container_path]
        if len(kept) == len(current):
            raise NotFoundError("mount", f"{container_path} of {agent.name}")
        self.store.set_additional_mounts(agent.id, json.dumps(kept))

    # -- restart ---------------------------------------------------------------------------------
    def restart_agent(self, actor: Actor, agent: AgentGroup, note: str | None = None) -> int:
        """Ask every running runner of the agent to stop after its turn; returns how many.

        With a note, each starts again at once and reads the note first (``on_wake``).
        """
        if not actor.can_write(agent.id):
            raise deny(actor, "restart", f"agent {agent.name}")
        if self.session_service is None:
            raise ValidationError("restarts need the session folders", field="agent")
        running = [
            s
            for s in self.repo.sessions()
            if s.agent_group_id == agent.id and self._runner(s) is RunnerLiveness.RUNNING
        ]
        for session in running:
            request_restart(self.session_service, session, note=note, requested_by=actor.label)
        return len(running)

    # -- users, roles, members -----------------------------------------------------------------
    def users(self, actor: Actor) -> Table:
        table = Table(["user", "name", "roles", "member_of", "created"], title="Users")
        names = {g.id: g.name for g in self.repo.agent_groups()}
        grants = self.store.role_grants()
        members = self.store.members()
        visible = None if actor.can_read(None) else _scoped_groups(actor)
        for u in self.store.users():
            roles = [
                f"{g.role}"
                + (f"@{names.get(g.agent_group_id, g.agent_group_id)}" if g.agent_group_id else "")
                for g in grants
                if g.user_id == u.id
            ]
            groups = [m.agent_group_id for m in members if m.user_id == u.id]
            if visible is not None:
                related = set(groups) | {g.agent_group_id for g in grants if g.user_id == u.id}
                if not related & visible:
                    continue
            table.rows.append(
                {
                    "user": u.id,
                    "name": u.display_name,
                    "roles": roles,
                    "member_of": [names.get(g, g) for g in groups],
                    "created": u.created_at.isoformat(),
                }
            )
        return table

    def roles(self, actor: Actor) -> Table:
        table = Table(["user", "role", "agent", "granted_at"], title="Roles")
        names = {g.id: g.name for g in self.repo.agent_groups()}
        for g in self.store.role_grants():
            if not actor.can_read(g.agent_group_id) and not (
                g.agent_group_id is None and actor.kind == "user" and admin_groups(actor.membership)
            ):
                continue
            table.rows.append(
                {
                    "user": g.user_id,
                    "role": g.role,
                    "agent": names.get(g.agent_group_id, g.agent_group_id)
                    if g.agent_group_id
                    else "(global)",
                    "granted_at": g.granted_at.isoformat(),
                }
            )
        return table

    def grant(self, actor: Actor, user_id: str, role: str, agent: AgentGroup | None = None) -> None:
        if role not in ROLES:
            raise ValidationError(f"unknown role {role!r}; use owner or admin", field="role")
        if role == "owner" and agent is not None:
            raise ValidationError("the owner role is global; it takes no agent", field="role")
        ag_id = agent.id if agent else None
        if actor.kind != "operator" and (
            actor.kind == "agent" or not can_grant(actor.membership, role, ag_id)
        ):
            raise deny(actor, f"grant {role}", f"on {agent.name if agent else 'everything'}")
        if self.store.user(user_id) is None:
            kind = user_id.split(":", 1)[0]
            self.repo.upsert_user(user_id, kind=kind, display_name=user_id.split(":", 1)[-1])
        self.repo.grant_role(user_id, role, agent_group_id=ag_id, granted_by=actor.label)

    def revoke(
        self, actor: Actor, user_id: str, role: str, agent: AgentGroup | None = None
    ) -> None:
        ag_id = agent.id if agent else None
        if role not in ROLES:
            raise ValidationError(f"unknown role {role!r}; use owner or admin", field="role")
        if actor.kind != "operator" and (
            actor.kind == "agent" or not can_grant(actor.membership, role, ag_id)
        ):
            raise deny(actor, f"revoke {role}", f"on {agent.name if agent else 'everything'}")
        if role == "owner" and self.store.count_owners() <= 1:
            raise ValidationError("refusing to revoke the last owner", field="role")
        if not self.store.revoke_role(user_id, role, ag_id):
            raise NotFoundError("role", f"{role} of {user_id}")

    def members(self, actor: Actor, agent: AgentGroup | None = None) -> Table:
        table = Table(["user", "agent", "added_by", "added_at"], title="Members")
        names = {g.id: g.name for g in self.repo.agent_groups()}
        for m in self.store.members(agent.id if agent else None):
            if not actor.can_read(m.agent_group_id):
                continue
            table.rows.append(
                {
                    "user": m.user_id,
                    "agent": names.get(m.agent_group_id, m.agent_group_id),
                    "added_by": m.added_by,
                    "added_at": m.added_at.isoformat(),
                }
            )
        return table

    def add_member(self, actor: Actor, agent: AgentGroup, user_id: str) -> None:
        if not actor.can_write(agent.id):
            raise deny(actor, "add members to", f"agent {agent.name}")
        if self.store.user(user_id) is None:
            self.repo.upsert_user(
                user_id, kind=user_id.split(":", 1)[0], display_name=user_id.split(":", 1)[-1]
            )
        self.repo.add_member(user_id, agent.id, added_by=actor.label)

    def remove_member(self, actor: Actor, agent: AgentGroup, user_id: str) -> None:
        if not actor.can_write(agent.id):
            raise deny(actor, "remove members from", f"agent {agent.name}")
        if not self.store.remove_member(user_id, agent.id):
            raise NotFoundError("member", f"{user_id} of {agent.name}")

    # -- sessions, approvals, drops ------------------------------------------------------------
    def sessions(self, actor: Actor, agent: AgentGroup | None = None) -> Table:
        table = Table(
            ["agent", "chat", "thread", "mode", "runner", "last_active", "id"], title="Sessions"
        )
        names = {g.id: g.name for g in self.repo.agent_groups()}
        mgs = {m.id: m for m in self.repo.messaging_groups()}
        for s in self.repo.sessions():
            if agent is not None and s.agent_group_id != agent.id:
                continue
            if not actor.can_read(s.agent_group_id):
                continue
            mg = mgs.get(s.messaging_group_id or "")
            table.rows.append(
                {
                    "agent": names.get(s.agent_group_id, s.agent_group_id),
                    "chat": f"{mg.channel_type}/{mg.platform_id}" if mg else None,
                    "thread": s.thread_id,
                    "mode": s.session_mode,
                    "runner": str(self._runner(s)),
                    "last_active": s.last_active.isoformat(),
                    "id": s.id,
                }
            )
        return table

    def session(self, actor: Actor, session_id: str) -> dict[str, Any]:
        try:
            row = self.repo.session(session_id)
        except NotFoundError:
            row = None
        if row is None or not actor.can_read(row.agent_group_id):
            raise NotFoundError("session", session_id)  # no cross-group oracle
        return {
            "id": row.id,
            "agent_group_id": row.agent_group_id,
            "messaging_group_id": row.messaging_group_id,
            "thread": row.thread_id,
            "mode": row.session_mode,
            "status": row.status,
            "runner": str(self._runner(row)),
            "last_exit_code": row.last_exit_code,
            "last_active": row.last_active.isoformat(),
            "created": row.created_at.isoformat(),
        }

    def _runner(self, session: SessionRow) -> RunnerLiveness:
        if self.liveness is not None:
            return self.liveness(session.id)
        return RunnerLiveness(session.runner_status)

    def may_see_approval(self, actor: Actor, a: PendingApproval) -> bool:
        if actor.kind == "operator":
            return True
        if actor.kind == "agent":
            return actor.can_read(a.agent_group_id) and a.agent_group_id is not None
        return can_answer(
            actor.membership, approver_user_id=a.approver_user_id, agent_group_id=a.agent_group_id
        )

    def approvals(self, actor: Actor, *, status: str | None = "pending") -> Table:
        table = Table(
            ["id", "kind", "title", "requester", "approver", "status", "options", "expires_at"],
            title="Approvals",
        )
        for a in self.store.approvals(status=status):
            if not self.may_see_approval(actor, a):
                continue
            table.rows.append(approval_row(a))
        return table

    def approval(self, actor: Actor, approval_id: str) -> dict[str, Any]:
        a = self.store.approval(approval_id)
        if a is None or not self.may_see_approval(actor, a):
            raise NotFoundError("approval", approval_id)
        row = approval_row(a)
        row["question"] = a.question
        return row

    def dropped(self, actor: Actor) -> Table:
        table = Table(
            ["chat", "sender", "reason", "count", "agent", "last_text", "last_seen"],
            title="Dropped",
        )
        names = {g.id: g.name for g in self.repo.agent_groups()}
        for d in self.repo.dropped():
            if not actor.can_read(d.agent_group_id):
                continue
            table.rows.append(
                {
                    "chat": f"{d.channel_type}/{d.platform_id}",
                    "sender": d.user_id or d.sender_name,
                    "reason": d.reason,
                    "count": d.message_count,
                    "agent": names.get(d.agent_group_id or "", d.agent_group_id),
                    "last_text": d.last_text,
                    "last_seen": d.last_seen.isoformat(),
                }
            )
        return table

    # -- tasks (rows of each session's inbound.db; see nanoclaw.scheduling.tasks) ----------------
    def tasks(self, actor: Actor, agent: AgentGroup | None = None) -> Table:
        from nanoclaw.scheduling.tasks import list_tasks

        table = Table(
            ["id", "agent", "status", "next", "recurrence", "prompt", "series"], title="Tasks"
        )
        if self.session_service is None:
            return table
        names = {g.id: g.name for g in self.repo.agent_groups()}
        for s in self.repo.sessions():
            if (agent is not None and s.agent_group_id != agent.id) or not actor.can_read(
                s.agent_group_id
            ):
                continue
            for t in list_tasks(self.session_service.store, self.session_service.layout(s)):
                table.rows.append(
                    {
                        "id": t.id,
                        "agent": names.get(s.agent_group_id, s.agent_group_id),
                        "status": t.status,
                        "next": t.process_after,
                        "recurrence": t.recurrence,
                        "prompt": t.prompt[:80],
                        "series": t.series_id,
                    }
                )
        return table

    def control_task(self, actor: Actor, key: str, action: str) -> int:
        """Pause, resume or cancel the task series ``key`` (a task id or series id)."""
        from nanoclaw.scheduling.tasks import control_task, list_tasks

        if action not in ("pause", "resume", "cancel"):
            raise ValidationError(f"unknown task action {action!r}", field="action")
        if self.session_service is None:
            raise NotFoundError("task", key)
        for s in self.repo.sessions():
            if not actor.can_read(s.agent_group_id):
                continue
            layout = self.session_service.layout(s)
            if not any(
                key in (t.id, t.series_id) for t in list_tasks(self.session_service.store, layout)
            ):
                continue
            if not actor.can_write(s.agent_group_id):
                raise deny(actor, f"{action} tasks of", "that agent")
            return control_task(self.session_service.store, layout, key, action)  # type: ignore[arg-type]
        raise NotFoundError("task", key)


def approval_row(a: PendingApproval) -> dict[str, Any]:
    options = [o["label"] for o in json.loads(a.options_json or "[]")]
    return {
        "id": a.id,
        "kind": a.kind,
        "title": a.title,
        "requester": a.requester_user_id,
        "approver": a.approver_user_id,
        "status": a.status,
        "options": [f"{n}. {label}" for n, label in enumerate(options, start=1)],
        "expires_at": a.expires_at.isoformat(),
    }


def _scoped_groups(actor: Actor) -> set[str]:
    if actor.kind == "agent" and actor.agent_group_id:
        return {actor.agent_group_id}
    return set(admin_groups(actor.membership))


def check_wiring_options(engage_mode: str, engage_pattern: str | None, session_mode: str) -> None:
    """Raise ``ValidationError`` for an unknown mode or an invalid regex (before any write)."""
    _check_engage(engage_mode, engage_pattern)
    if session_mode not in SESSION_MODES:
        raise ValidationError(
            f"unknown session mode {session_mode!r}; use {', '.join(SESSION_MODES)}",
            field="session_mode",
        )


def _check_engage(mode: str, pattern: str | None) -> None:
    if mode not in ENGAGE_MODES:
        raise ValidationError(
            f"unknown engage mode {mode!r}; use {', '.join(ENGAGE_MODES)}", field="engage"
        )
    if mode == "pattern" and pattern:
        check_user_pattern(pattern)  # RE2's reason in the error; nothing is written
