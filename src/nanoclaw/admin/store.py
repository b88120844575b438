"""Central-DB reads and writes of the admin surface and approval flows (beyond ``Repository``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update

from nanoclaw.contract.timeutil import utc_now
from nanoclaw.db.central import CentralDB
from nanoclaw.db.models import (
    AgentDestination,
    AgentGroup,
    AgentGroupMember,
    ContainerConfig,
    MessagingGroup,
    PendingApproval,
    User,
    UserDm,
    UserRole,
    Wiring,
)
from nanoclaw.errors import NotFoundError, ValidationError
from nanoclaw.ids import new_id
from nanoclaw.permissions.access import RoleGrant


@dataclass(frozen=True)
class NewApproval:
    kind: str
    title: str
    question: str
    options: list[dict[str, str]]
    payload: dict[str, Any]
    ttl_s: float
    dedup_key: str | None = None
    messaging_group_id: str | None = None
    agent_group_id: str | None = None
    session_id: str | None = None
    requester_user_id: str | None = None
    approver_user_id: str | None = None
    action: str | None = None


class AdminStore:
    def __init__(self, db: CentralDB) -> None:
        self.db = db

    # -- roles, users, members -------------------------------------------------------------------
    def role_grants(self) -> list[RoleGrant]:
        with self.db.session() as s:
            rows = s.scalars(select(UserRole).order_by(UserRole.granted_at, UserRole.id)).all()
            return [RoleGrant(r.user_id, r.role, r.agent_group_id, r.granted_at) for r in rows]

    def revoke_role(self, user_id: str, role: str, agent_group_id: str | None) -> bool:
        with self.db.session() as s:
            result = s.execute(
                delete(UserRole).where(
                    UserRole.user_id == user_id,
                    UserRole.role == role,
                    func.coalesce(UserRole.agent_group_id, "") == (agent_group_id or ""),
                )
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def count_owners(self) -> int:
        with self.db.session() as s:
            return int(s.scalar(select(func.count()).where(UserRole.role == "owner")) or 0)

    def users(self) -> list[User]:
        with self.db.session() as s:
            return list(s.scalars(select(User).order_by(User.created_at)))

    def user(self, user_id: str) -> User | None:
        with self.db.session() as s:
            return s.get(User, user_id)

    def members(self, agent_group_id: str | None = None) -> list[AgentGroupMember]:
        with self.db.session() as s:
            query = select(AgentGroupMember).order_by(AgentGroupMember.added_at)
            if agent_group_id is not None:
                query = query.where(AgentGroupMember.agent_group_id == agent_group_id)
            return list(s.scalars(query))

    def remove_member(self, user_id: str, agent_group_id: str) -> bool:
        with self.db.session() as s:
            row = s.get(AgentGroupMember, (user_id, agent_group_id))
            if row is None:
                return False
            s.delete(row)
            return True

    # -- agent groups ------------------------------------------------------------------------------
    def update_agent_group(
        self, agent_group_id: str, *, name: str | None = None, admin_scope: str | None = None
    ) -> None:
        with self.db.session() as s:
            group = s.get(AgentGroup, agent_group_id)
            if group is None:
                raise NotFoundError("agent group", agent_group_id)
            if name:
                group.name = name
            if admin_scope is not None:
                if admin_scope not in ("disabled", "group", "global"):
                    raise ValidationError(
                        f"unknown admin scope {admin_scope!r} (disabled, group, global)",
                        field="admin_scope",
                    )
                config = s.get(ContainerConfig, agent_group_id)
                if config is None:
                    config = ContainerConfig(agent_group_id=agent_group_id)
                    s.add(config)
                config.admin_scope = admin_scope

    def set_additional_mounts(self, agent_group_id: str, mounts_json: str) -> None:
        """Replace the group's extra-mount requests (validated by the caller; effective next start)."""
        with self.db.session() as s:
            config = s.get(ContainerConfig, agent_group_id)
            if config is None:
                config = ContainerConfig(agent_group_id=agent_group_id)
                s.add(config)
            config.additional_mounts = mounts_json

    def delete_agent_group(self, agent_group_id: str) -> None:
        with self.db.session() as s:
            group = s.get(AgentGroup, agent_group_id)
            if group is None:
                raise NotFoundError("agent group", agent_group_id)
            s.delete(group)

    # -- destinations and container config ---------------------------------------------------------
    def add_destination(
        self, agent_group_id: str, name: str, *, target_type: str, target_id: str
    ) -> AgentDestination:
        """Insert a destination; a name already taken is an error (never silently replaced)."""
        with self.db.session() as s:
            if s.get(AgentDestination, (agent_group_id, name)) is not None:
                raise ValidationError(f"a destination named {name!r} exists", field="name")
            dest = AgentDestination(
                agent_group_id=agent_group_id,
                local_name=name,
                target_type=target_type,
                target_id=target_id,
            )
            s.add(dest)
            return dest

    def remove_destination(self, agent_group_id: str, name: str) -> bool:
        with self.db.session() as s:
            result = s.execute(
                delete(AgentDestination).where(
                    AgentDestination.agent_group_id == agent_group_id,
                    AgentDestination.local_name == name,
                )
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def additional_mounts(self, agent_group_id: str) -> list[dict[str, Any]]:
        with self.db.session() as s:
            cfg = s.get(ContainerConfig, agent_group_id)
            raw = cfg.additional_mounts if cfg is not None else "[]"
        try:
            value = json.loads(raw or "[]")
        except ValueError:
            return []
        return [m for m in value if isinstance(m, dict)] if isinstance(value, list) else []

    def admin_scope(self, agent_group_id: str) -> str:
        with self.db.session() as s:
            config = s.get(ContainerConfig, agent_group_id)
            return config.admin_scope if config is not None else "group"

    # -- messaging groups and wirings --------------------------------------------------------------
    def set_policy(self, messaging_group_id: str, policy: str) -> None:
        if policy not in ("strict", "request_approval", "public"):
            raise ValidationError(
                f"unknown policy {policy!r} (strict, request_approval, public)", field="policy"
            )
        with self.db.session() as s:
            mg = s.get(MessagingGroup, messaging_group_id)
            if mg is None:
                raise NotFoundError("messaging group", messaging_group_id)
            mg.unknown_sender_policy = policy

    def set_denied(self, messaging_group_id: str, denied: bool) -> None:
        with self.db.session() as s:
            mg = s.get(MessagingGroup, messaging_group_id)
            if mg is None:
                raise NotFoundError("messaging group", messaging_group_id)
            mg.denied_at = utc_now() if denied else None

    def rename_messaging_group(self, messaging_group_id: str, name: str) -> None:
        with self.db.session() as s:
            mg = s.get(MessagingGroup, messaging_group_id)
            if mg is None:
                raise NotFoundError("messaging group", messaging_group_id)
            mg.name = name

    def delete_messaging_group(self, messaging_group_id: str) -> None:
        with self.db.session() as s:
            mg = s.get(MessagingGroup, messaging_group_id)
            if mg is None:
                raise NotFoundError("messaging group", messaging_group_id)
            s.delete(mg)

    def wiring(self, wiring_id: str) -> Wiring | None:
        with self.db.session() as s:
            return s.get(Wiring, wiring_id)

    def find_wiring(self, messaging_group_id: str, agent_group_id: str) -> Wiring | None:
        with self.db.session() as s:
            return s.scalar(
                select(Wiring).where(
                    Wiring.messaging_group_id == messaging_group_id,
                    Wiring.agent_group_id == agent_group_id,
                )
            )

    def update_wiring(self, wiring_id: str, **fields: object) -> Wiring:
        allowed = {
            "engage_mode",
            "engage_pattern",
            "sender_scope",
            "ignored_message_policy",
            "session_mode",
            "priority",
        }
        unknown = set(fields) - allowed
        if unknown:
            raise ValidationError(f"unknown wiring field(s): {', '.join(sorted(unknown))}")
        with self.db.session() as s:
            wiring = s.get(Wiring, wiring_id)
            if wiring is None:
                raise NotFoundError("wiring", wiring_id)
            for key, value in fields.items():
                setattr(wiring, key, value)
            return wiring

    # -- user DMs ----------------------------------------------------------------------------------
    def user_dm(self, user_id: str, channel_type: str) -> str | None:
        with self.db.session() as s:
            row = s.get(UserDm, (user_id, channel_type))
            return row.messaging_group_id if row is not None else None

    def set_user_dm(self, user_id: str, channel_type: str, messaging_group_id: str) -> None:
        with self.db.session() as s:
            s.merge(
                UserDm(
                    user_id=user_id,
                    channel_type=channel_type,
                    messaging_group_id=messaging_group_id,
                    resolved_at=utc_now(),
                )
            )

    # -- approvals ---------------------------------------------------------------------------------
    def create_approval(self, new: NewApproval) -> PendingApproval | None:
        """Insert a pending request; None when one with the same dedup key is already open."""
        now = utc_now()
        with self.db.session() as s:
            if new.dedup_key is not None and s.scalar(
                select(PendingApproval.id).where(PendingApproval.dedup_key == new.dedup_key)
            ):
                return None
            row = PendingApproval(
                id=new_id("appr"),
                kind=new.kind,
                status="pending",
                dedup_key=new.dedup_key,
                messaging_group_id=new.messaging_group_id,
                agent_group_id=new.agent_group_id,
                session_id=new.session_id,
                requester_user_id=new.requester_user_id,
                approver_user_id=new.approver_user_id,
                action=new.action,
                title=new.title,
                question=new.question,
                options_json=json.dumps(new.options),
                payload_json=json.dumps(new.payload),
                created_at=now,
                expires_at=now + timedelta(seconds=new.ttl_s),
            )
            s.add(row)
            return row

    def set_card(
        self, approval_id: str, channel_type: str, platform_id: str, message_id: str | None
    ) -> None:
        with self.db.session() as s:
            s.execute(
                update(PendingApproval)
                .where(PendingApproval.id == approval_id)
                .values(
                    card_channel_type=channel_type,
                    card_platform_id=platform_id,
                    card_message_id=message_id,
                )
            )

    def set_stage(self, approval_id: str, stage: str | None) -> None:
        with self.db.session() as s:
            s.execute(
                update(PendingApproval).where(PendingApproval.id == approval_id).values(stage=stage)
            )

    def drop_approval(self, approval_id: str) -> None:
        """Remove a request that never reached anyone (no card could be delivered)."""
        with self.db.session() as s:
            s.execute(delete(PendingApproval).where(PendingApproval.id == approval_id))

    def approval(self, approval_id: str) -> PendingApproval | None:
        with self.db.session() as s:
            return s.get(PendingApproval, approval_id)

    def approvals(self, *, status: str | None = "pending") -> list[PendingApproval]:
        with self.db.session() as s:
            query = select(PendingApproval).order_by(PendingApproval.created_at)
            if status is not None:
                query = query.where(PendingApproval.status == status)
            return list(s.scalars(query))

    def decide(
        self, approval_id: str, *, status: str, by: str | None, decision: str | None
    ) -> bool:
        """Close a pending request exactly once; False when it was no longer pending."""
        with self.db.session() as s:
            result = s.execute(
                update(PendingApproval)
                .where(PendingApproval.id == approval_id, PendingApproval.status == "pending")
                .values(
                    status=status,
                    dedup_key=None,
                    stage=None,
                    decided_by=by,
                    decision=decision,
                    decided_at=utc_now(),
                )
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def due_expiries(self, now: datetime | None = None) -> list[PendingApproval]:
        with self.db.session() as s:
            return list(
                s.scalars(
                    select(PendingApproval).where(
                        PendingApproval.status == "pending",
                        PendingApproval.expires_at <= (now or utc_now()),
                    )
                )
            )
