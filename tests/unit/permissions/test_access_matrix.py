"""The access matrix: every role against every pure check, approver order and origin rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nanoclaw.db.repository import Membership
from nanoclaw.permissions.access import (
    RoleGrant,
    can_access,
    can_answer,
    can_grant,
    is_admin_of,
    is_any_admin,
    is_global_privileged,
    order_for_delivery,
    pick_approvers,
    scope_allows,
)


def m(
    user: str, roles: tuple[tuple[str, str | None], ...] = (), member_of: tuple[str, ...] = ()
) -> Membership:
    return Membership(user_id=user, roles=roles, member_of=frozenset(member_of))


PEOPLE: dict[str, Membership | None] = {
    "unknown": None,
    "stranger": m("cli:s"),
    "member_a": m("cli:ma", member_of=("A",)),
    "admin_a": m("cli:aa", roles=(("admin", "A"),)),
    "admin_b": m("cli:ab", roles=(("admin", "B"),)),
    "global_admin": m("cli:ga", roles=(("admin", None),)),
    "owner": m("cli:o", roles=(("owner", None),)),
}

# columns: can_access A, admin of A, admin of B, global privileged, any admin,
#          grant owner, grant global admin, grant admin of A, answer A-card (not approver),
#          answer global card (not approver)
MATRIX = {
    "unknown": (0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    "stranger": (0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    "member_a": (1, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    "admin_a": (1, 1, 0, 0, 1, 0, 0, 1, 1, 0),
    "admin_b": (0, 0, 1, 0, 1, 0, 0, 0, 0, 0),
    "global_admin": (1, 1, 1, 1, 1, 0, 1, 1, 1, 1),
    "owner": (1, 1, 1, 1, 1, 1, 1, 1, 1, 1),
}


@pytest.mark.parametrize("who", sorted(MATRIX))
def test_access_matrix(who: str) -> None:
    p = PEOPLE[who]
    got = (
        can_access(p, "A"),
        is_admin_of(p, "A"),
        is_admin_of(p, "B"),
        is_global_privileged(p),
        is_any_admin(p),
        can_grant(p, "owner", None),
        can_grant(p, "admin", None),
        can_grant(p, "admin", "A"),
        can_answer(p, approver_user_id="cli:someone-else", agent_group_id="A"),
        can_answer(p, approver_user_id="cli:someone-else", agent_group_id=None),
    )
    assert tuple(int(x) for x in got) == MATRIX[who]


def test_the_named_approver_may_always_answer_and_nobody_unknown() -> None:
    stranger = PEOPLE["stranger"]
    assert can_answer(stranger, approver_user_id="cli:s", agent_group_id="A")
    assert not can_answer(None, approver_user_id="cli:s", agent_group_id="A")


def test_admin_of_nothing_is_not_admin_of_none() -> None:
    assert not is_admin_of(PEOPLE["admin_a"], None)


@pytest.mark.parametrize(
    ("scope", "target", "allowed"),
    [
        ("disabled", "own", False),
        ("disabled", None, False),
        ("group", "own", True),
        ("group", "other", False),
        ("group", None, False),
        ("global", "other", True),
        ("global", None, True),
    ],
)
def test_admin_scope(scope: str, target: str | None, allowed: bool) -> None:
    assert scope_allows(scope, own_group="own", target_group=target) is allowed


def test_approvers_scoped_admins_then_global_admins_then_owners_oldest_first() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    grants = [
        RoleGrant("cli:owner", "owner", None, t),
        RoleGrant("slack:ga2", "admin", None, t + timedelta(minutes=2)),
        RoleGrant("cli:ga1", "admin", None, t + timedelta(minutes=1)),
        RoleGrant("cli:aa", "admin", "A", t + timedelta(minutes=5)),
        RoleGrant("cli:ab", "admin", "B", t),
        RoleGrant("cli:owner", "admin", None, t + timedelta(minutes=9)),  # deduplicated
    ]
    assert pick_approvers(grants, "A") == ["cli:aa", "cli:ga1", "slack:ga2", "cli:owner"]
    assert pick_approvers(grants, None) == ["cli:ga1", "slack:ga2", "cli:owner"]
    assert order_for_delivery(["cli:ga1", "slack:ga2", "cli:owner"], "slack") == [
        "slack:ga2",
        "cli:ga1",
        "cli:owner",
    ]
