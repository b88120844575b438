"""Access and admin checks as pure functions of a user's roles and memberships (upstream §8)."""

from __future__ import annotations

from nanoclaw.db.repository import Membership


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


def can_access(m: Membership | None, agent_group_id: str) -> bool:
    """Unknown users are refused; owners, admins (global or of the group) and members may talk."""
    if m is None:
        return False
    return is_admin_of(m, agent_group_id) or agent_group_id in m.member_of
