"""The repository's plain-sqlite3 paths: the same rows, types and writes as the ORM's."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select

from nanoclaw.db.central import CentralDB
from nanoclaw.db.models import CentralBase, MessagingGroup, SessionRow, User, Wiring
from nanoclaw.db.repository import NewChat, Repository, SessionKey
from nanoclaw.db.sqlite import BUSY_TIMEOUT_MS
from tests.conftest import REPO_ROOT
from tests.helpers import make_agent, wire_chat

DENIED = datetime(2026, 1, 5, 21, 3, 4, 567890, tzinfo=UTC)


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    db = CentralDB(path=tmp_path / "central.db", migrations_root=REPO_ROOT / "migrations")
    db.migrate()
    return Repository(db)


@pytest.fixture
def other(repo: Repository) -> Iterator[sqlite3.Connection]:
    """A second connection to the central DB, as another process (the CLI) would hold."""
    conn = sqlite3.connect(str(repo.db.path), isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        yield conn
    finally:
        conn.close()


def _columns(instance: CentralBase) -> dict[str, Any]:
    """Every mapped column's value and its type (True == 1, so the type is compared too)."""
    keys = sa_inspect(type(instance)).columns.keys()
    return {k: (getattr(instance, k), type(getattr(instance, k))) for k in keys}


def _orm_get(repo: Repository, model: type[CentralBase], key: str) -> CentralBase:
    with repo.db.session() as s:
        found = s.get(model, key)
    assert found is not None
    return found


def test_plain_reads_give_what_the_orm_gives_for_nulls_datetimes_and_booleans(
    repo: Repository,
) -> None:
    andy = make_agent(repo, "Andy")
    group, wiring = wire_chat(repo, andy, "room", is_group=True, engage_pattern=None)
    direct = repo.ensure_messaging_group(channel_type="cli", platform_id="dm")  # name NULL
    with repo.db.session() as s:
        found = s.get(MessagingGroup, group.id)
        assert found is not None
        found.denied_at = DENIED
        s.add(
            SessionRow(
                id="sess-t",
                agent_group_id=andy.id,
                messaging_group_id=group.id,
                thread_id="t1",
                session_mode="per-thread",
                last_exit_code=3,
                last_exit_log="exit 3",
            )
        )
    repo.create_session(
        agent_group_id=andy.id, messaging_group_id=None, thread_id=None, mode="agent-shared"
    )

    for mg in (group, direct):
        plain = repo.messaging_group("cli", mg.platform_id)
        assert plain is not None
        assert _columns(plain) == _columns(_orm_get(repo, MessagingGroup, mg.id))
        by_id = repo.messaging_group_by_id(mg.id)
        assert by_id is not None and _columns(by_id) == _columns(plain)
    assert repo.messaging_group_by_id(group.id).denied_at == DENIED  # type: ignore[union-attr]
    assert repo.messaging_group("cli", "dm").is_group is False  # type: ignore[union-attr]

    (plain_wiring,) = repo.wirings_for(group.id)
    assert plain_wiring.engage_pattern is None
    assert _columns(plain_wiring) == _columns(_orm_get(repo, Wiring, wiring.id))

    for row in repo.sessions(active_only=False):
        plain_session = repo.session(row.id)
        assert _columns(plain_session) == _columns(_orm_get(repo, SessionRow, row.id))
    assert repo.session("sess-t").last_exit_code == 3


def test_plain_instances_are_detached_like_the_orms(repo: Repository) -> None:
    andy = make_agent(repo, "Andy")
    mg, _ = wire_chat(repo, andy, "room")
    plain = repo.messaging_group("cli", "room")
    assert plain is not None
    state = sa_inspect(plain)
    assert state.detached and state.identity == (mg.id,)
    assert not state.modified and not state.expired_attributes
    # Merged into a session it is the stored row, not a new one.
    with repo.db.session() as s:
        merged = s.merge(plain)
        assert sa_inspect(merged).persistent and not s.is_modified(merged)
    assert len(repo.messaging_groups()) == 1


def _orm_find_session(repo: Repository, key: SessionKey) -> str | None:
    """The ORM query ``find_session`` ran before it went plain (``== None`` is ``IS NULL``)."""
    query = select(SessionRow).where(
        SessionRow.agent_group_id == key.agent_group_id, SessionRow.status == "active"
    )
    if key.mode != "agent-shared":
        query = query.where(SessionRow.messaging_group_id == key.messaging_group_id)
        if key.mode == "per-thread":
            query = query.where(SessionRow.thread_id == key.thread_id)
        else:
            query = query.where(SessionRow.thread_id.is_(None))
    with repo.db.session() as s:
        found = s.scalar(query.order_by(SessionRow.last_active.desc()).limit(1))
    return found.id if found is not None else None


def test_find_session_matches_as_the_orm_query_did(repo: Repository) -> None:
    andy = make_agent(repo, "Andy")
    room, _ = wire_chat(repo, andy, "room")
    made = [
        ("shared", room.id, None),
        ("per-thread", room.id, "t1"),
        ("per-thread", room.id, "t2"),
        ("agent-shared", None, None),
    ]
    for n, (mode, mg_id, thread) in enumerate(made):
        repo.create_session(
            agent_group_id=andy.id,
            messaging_group_id=mg_id,
            thread_id=thread,
            mode=mode,
            session_id=f"s{n}",
        )
        repo.touch_session(f"s{n}", at=DENIED + timedelta(seconds=n))
    keys = [
        SessionKey(andy.id, mg_id, thread, mode)
        for mode in ("shared", "per-thread", "agent-shared")
        for mg_id in (room.id, None, "mg-none")
        for thread in (None, "t1", "t2", "t3")
    ]
    found = [repo.find_session(**_find_args(key)) for key in keys]
    assert [f.id if f else None for f in found] == [_orm_find_session(repo, k) for k in keys]
    assert {f.id for f in found if f} == {"s0", "s1", "s2", "s3"}  # every kind was matched


def _find_args(key: SessionKey) -> dict[str, Any]:
    return {
        "agent_group_id": key.agent_group_id,
        "messaging_group_id": key.messaging_group_id,
        "thread_id": key.thread_id,
        "mode": key.mode,
    }


def test_touch_sessions_stores_the_iso_text_the_orm_stores(repo: Repository) -> None:
    andy = make_agent(repo, "Andy")
    one = repo.create_session(
        agent_group_id=andy.id, messaging_group_id=None, thread_id=None, mode="agent-shared"
    )
    two = repo.create_session(
        agent_group_id=andy.id, messaging_group_id=None, thread_id=None, mode="agent-shared"
    )
    at = datetime(2026, 3, 1, 12, 0, 0, 1, tzinfo=UTC)
    repo.touch_sessions([one.id, two.id], at=at)
    with repo.db.plain(write=False) as conn:
        stored = conn.execute("SELECT last_active FROM sessions ORDER BY id").fetchall()
    assert stored == [("2026-03-01T12:00:00.000001Z",)] * 2
    assert repo.session(one.id).last_active == at == _orm_get(repo, SessionRow, two.id).last_active  # type: ignore[attr-defined]


def _route(
    repo: Repository, chat: str, sender: str, *, name: str | None, mention: bool = False
) -> Any:
    return repo.route_facts(
        "cli",
        chat,
        user_id=f"cli:{sender}",
        user_kind="cli",
        display_name=name,
        new_chat=NewChat(is_group=True, unknown_sender_policy="request_approval")
        if mention
        else None,
        session_key=lambda mg, w: SessionKey(w.agent_group_id, mg.id, None, w.session_mode),
    )


def test_a_warm_route_reads_while_another_process_holds_the_write_lock(
    repo: Repository, other: sqlite3.Connection
) -> None:
    andy = make_agent(repo, "Andy")
    mg, _ = wire_chat(repo, andy, "room")
    session = repo.create_session(
        agent_group_id=andy.id, messaging_group_id=mg.id, thread_id=None, mode="shared"
    )
    _route(repo, "room", "alice", name="Alice")  # the sender is created
    other.execute("BEGIN IMMEDIATE")  # a writer elsewhere: a write here would wait, then fail
    try:
        facts = _route(repo, "room", "alice", name="Alice")
        again = _route(repo, "room", "alice", name=None)  # no name: nothing to rename
    finally:
        other.execute("ROLLBACK")
    assert facts.messaging_group.id == mg.id
    assert [s.id if s else None for s in facts.sessions.values()] == [session.id]
    assert facts.folders == {andy.id: "andy"}
    assert again.membership == facts.membership


def test_a_route_creates_renames_and_registers_what_it_must(
    repo: Repository, other: sqlite3.Connection
) -> None:
    andy = make_agent(repo, "Andy")
    wire_chat(repo, andy, "room")
    _route(repo, "room", "alice", name="Alice")
    _route(repo, "room", "alice", name="Alicia")  # a rename
    # Removed by another process after this repository saw it: its guess is stale.
    _route(repo, "room", "bob", name="Bob")
    other.execute("DELETE FROM users WHERE id = 'cli:bob'")
    facts = _route(repo, "room", "bob", name="Bob")
    registered = _route(repo, "new", "carol", name="Carol", mention=True)
    with repo.db.session() as s:
        users = {u.id: (u.kind, u.display_name) for u in s.scalars(select(User))}
        created = {u.id: u.created_at for u in s.scalars(select(User))}
    assert users == {
        "cli:alice": ("cli", "Alicia"),
        "cli:bob": ("cli", "Bob"),
        "cli:carol": ("cli", "Carol"),
    }
    assert all(at.tzinfo is not None for at in created.values())
    assert facts.membership is not None and facts.membership.user_id == "cli:bob"
    new = repo.messaging_group("cli", "new")
    assert new is not None and _columns(new) == _columns(registered.messaging_group)
    assert new.is_group is True and new.unknown_sender_policy == "request_approval"
    assert new.name is None and new.denied_at is None
    # A chat nobody mentioned is not registered, and its sender is not created.
    assert _route(repo, "quiet", "dave", name="Dave").messaging_group is None
    assert repo.membership("cli:dave") is None
