"""Access and admin checks as pure functions of a user's roles and memberships (upstream §8).

Roles: the owner (global, the first paired operator), admins (global, or of one agent
group) and members of an agent group. Owners and admins are implicit members.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from nanoclaw.db.repository import Membership

ADMIN_SCOPES = ("disabled", "group", "global")


def is_owner(m: Membership | None) -> bool:
    return m is not None and any(role == "owner" for role, _ in m.roles)


def is_global_admin(m: Membership | None) -> bool:
    return m is not None and any(role == "admin" and ag is None for role, ag in m.roles)


def is_admin_of(m: Membership | None, agent_group_id: str | None) -> bool:
    """Owner, global admin, or admin of this agent group."""
    if m is None:
        return False
    if is_owner(m) or is_global_admin(m):
        return True
    return agent_group_id is not None and ("admin", agent_group_id) in m.roles


def is_global_privileged(m: Membership | None) -> bool:
    """Owner or global admin: may act on everything (except granting ownership)."""
    return is_owner(m) or is_global_admin(m)


def admin_groups(m: Membership | None) -> frozenset[str]:
    """The agent groups a scoped admin administers (empty for non-admins)."""
    if m is None:
        return frozenset()
    return frozenset(ag for role, ag in m.roles if role == "admin" and ag is not None)


def is_any_admin(m: Membership | None) -> bool:
    """May use admin chat commands at all: owner, global admin, or admin of some group."""
    return is_global_privileged(m) or bool(admin_groups(m))


def can_access(m: Membership | None, agent_group_id: str) -> bool:
    """Unknown users are refused; owners, admins (global or of the group) and members may talk."""
    if m is None:
        return False
    return is_admin_of(m, agent_group_id) or agent_group_id in m.member_of


def can_grant(m: Membership | None, role: str, agent_group_id: str | None) -> bool:
    """Only an owner grants or revokes ownership and global roles are for owners/global admins;
    a scoped admin may grant admin of their own group only."""
    if role == "owner":
        return is_owner(m)
    if agent_group_id is None:
        return is_global_privileged(m)
    return is_admin_of(m, agent_group_id)


def can_answer(
    m: Membership | None, *, approver_user_id: str | None, agent_group_id: str | None
) -> bool:
    """Who may answer an approval card: its approver, or an admin of the card's agent group
    (for cards without a group, an owner or a global admin)."""
    if m is None:
        return False
    if approver_user_id is not None and m.user_id == approver_user_id:
        return True
    if agent_group_id is None:
        return is_global_privileged(m)
    return is_admin_of(m, agent_group_id)


def scope_allows(scope: str, *, own_group: str, target_group: str | None) -> bool:
    """Whether an agent with admin ``scope`` may read or act on ``target_group``
    (None = something not bound to one group, e.g. users or global settings)."""
    if scope == "global":
        return True
    if scope == "group":
        return target_group == own_group
    return False


@dataclass(frozen=True)
class RoleGrant:
    user_id: str
    role: str
    agent_group_id: str | None
    granted_at: datetime


def pick_approvers(grants: Iterable[RoleGrant], agent_group_id: str | None) -> list[str]:
    """Admins of the group → global admins → owners, each tier oldest grant first, deduplicated."""
    ordered = sorted(grants, key=lambda g: g.granted_at)
    tiers: list[list[str]] = [[], [], []]
    for g in ordered:
        if g.role == "admin" and agent_group_id is not None and g.agent_group_id == agent_group_id:
            tiers[0].append(g.user_id)
        elif g.role == "admin" and g.agent_group_id is None:
            tiers[1].append(g.user_id)
        elif g.role == "owner":
            tiers[2].append(g.user_id)
    seen: set[str] = set()
    result: list[str] = []
    for tier in tiers:
        for user in tier:
            if user not in seen:
                seen.add(user)
                result.append(user)
    return result


def order_for_delivery(approvers: Sequence[str], origin_channel_type: str | None) -> list[str]:
    """Approvers on the origin's channel type first (keeping their order), then everyone else."""
    if origin_channel_type is None:
        return list(approvers)
    prefix = f"{origin_channel_type}:"
    same = [a for a in approvers if a.startswith(prefix)]
    return same + [a for a in approvers if not a.startswith(prefix)]
