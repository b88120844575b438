"""The central DB: pragmas, constraints, folder rules and wiring destinations."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from nanoclaw.db import migrate
from nanoclaw.db.central import CentralDB
from nanoclaw.db.models import UserRole
from nanoclaw.db.repository import Repository, normalize_destination_name, validate_folder
from nanoclaw.errors import NotFoundError, ValidationError
from tests.conftest import REPO_ROOT


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    db = CentralDB(path=tmp_path / "central.db", migrations_root=REPO_ROOT / "migrations")
    db.migrate()
    return Repository(db)


def test_central_db_uses_wal_foreign_keys_and_a_busy_timeout(repo: Repository) -> None:
    with repo.db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 5000


def test_migrating_twice_is_harmless(repo: Repository) -> None:
    repo.db.migrate()
    repo.create_agent_group(name="Andy", folder="andy")
    repo.db.migrate()
    assert [g.folder for g in repo.agent_groups()] == ["andy"]


def test_the_head_read_from_the_scripts_is_alembics_head() -> None:
    root = REPO_ROOT / "migrations"
    assert migrate.declared_head(root, "central") == migrate.head_revision(root, "central")


def test_a_database_at_head_is_opened_without_importing_alembic(repo: Repository) -> None:
    path = repo.db.engine.url.database
    code = (
        "import sys; from pathlib import Path; from nanoclaw.db.central import CentralDB; "
        f"CentralDB(path=Path({str(path)!r}), migrations_root=Path({str(REPO_ROOT / 'migrations')!r}))"
        ".migrate(); print(sorted(m for m in sys.modules if m.startswith(('alembic', 'mako'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_new_database_is_still_migrated_by_alembic(tmp_path: Path) -> None:
    db = CentralDB(path=tmp_path / "fresh.db", migrations_root=REPO_ROOT / "migrations")
    db.migrate()
    assert migrate.current_revision(db.engine) == migrate.head_revision(
        REPO_ROOT / "migrations", "central"
    )


@pytest.mark.parametrize(
    "folder", ["", "global", "../x", "a/b", "-lead", "x" * 65, "sp ace", "a\x00"]
)
def test_invalid_folders_are_refused(folder: str) -> None:
    with pytest.raises(ValidationError):
        validate_folder(folder)


def test_folder_is_unique(repo: Repository) -> None:
    repo.create_agent_group(name="Andy", folder="andy")
    with pytest.raises(ValidationError, match="taken"):
        repo.create_agent_group(name="Other", folder="andy")


def test_a_wiring_creates_one_channel_destination_with_collision_safe_names(
    repo: Repository,
) -> None:
    ag = repo.create_agent_group(name="Andy", folder="andy")
    first = repo.ensure_messaging_group(channel_type="cli", platform_id="a", name="Team Chat")
    second = repo.ensure_messaging_group(channel_type="slack", platform_id="C1", name="team chat!")
    unnamed = repo.ensure_messaging_group(channel_type="telegram", platform_id="42")
    for mg in (first, second, unnamed):
        repo.create_wiring(messaging_group_id=mg.id, agent_group_id=ag.id)
    names = {d.local_name: d.target_id for d in repo.destinations(ag.id)}
    assert names["team-chat"] == first.id
    assert names["team-chat-2"] == second.id
    assert names[f"telegram-{unnamed.id[-8:]}"] == unnamed.id
    assert len(names) == 3


def test_wiring_twice_is_refused_and_deleting_keeps_others(repo: Repository) -> None:
    ag = repo.create_agent_group(name="Andy", folder="andy")
    mg = repo.ensure_messaging_group(channel_type="cli", platform_id="a")
    wiring = repo.create_wiring(messaging_group_id=mg.id, agent_group_id=ag.id)
    with pytest.raises(ValidationError):
        repo.create_wiring(messaging_group_id=mg.id, agent_group_id=ag.id)
    repo.delete_wiring(wiring.id)
    assert repo.wirings_for(mg.id) == []
    with pytest.raises(NotFoundError):
        repo.delete_wiring(wiring.id)


def test_wirings_come_highest_priority_first(repo: Repository) -> None:
    mg = repo.ensure_messaging_group(channel_type="cli", platform_id="a")
    low = repo.create_agent_group(name="Low", folder="low")
    high = repo.create_agent_group(name="High", folder="high")
    repo.create_wiring(messaging_group_id=mg.id, agent_group_id=low.id, priority=0)
    repo.create_wiring(messaging_group_id=mg.id, agent_group_id=high.id, priority=5)
    assert [w.agent_group_id for w in repo.wirings_for(mg.id)] == [high.id, low.id]


def test_enumerated_columns_reject_unknown_values(repo: Repository) -> None:
    ag = repo.create_agent_group(name="Andy", folder="andy")
    mg = repo.ensure_messaging_group(channel_type="cli", platform_id="a")
    with pytest.raises(IntegrityError):
        repo.create_wiring(messaging_group_id=mg.id, agent_group_id=ag.id, engage_mode="always")
    with pytest.raises(IntegrityError):
        repo.ensure_messaging_group(
            channel_type="cli", platform_id="b", unknown_sender_policy="open"
        )


def test_owner_is_global_and_grants_are_unique(repo: Repository) -> None:
    ag = repo.create_agent_group(name="Andy", folder="andy")
    repo.upsert_user("cli:bob", kind="cli", display_name="Bob")
    with pytest.raises(ValidationError):
        repo.grant_role("cli:bob", "owner", agent_group_id=ag.id, granted_by=None)
    repo.grant_role("cli:bob", "admin", granted_by=None)
    repo.grant_role("cli:bob", "admin", granted_by=None)
    repo.grant_role("cli:bob", "admin", agent_group_id=ag.id, granted_by=None)
    with repo.db.session() as s:
        assert s.query(UserRole).count() == 2
    with pytest.raises(IntegrityError), repo.db.session() as s:
        s.add(UserRole(user_id="cli:bob", role="admin", agent_group_id=None))


def test_foreign_keys_cascade_from_agent_groups(repo: Repository) -> None:
    ag = repo.create_agent_group(name="Andy", folder="andy")
    mg = repo.ensure_messaging_group(channel_type="cli", platform_id="a")
    repo.create_wiring(messaging_group_id=mg.id, agent_group_id=ag.id)
    with repo.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM agent_groups"))
    assert repo.wirings_for(mg.id) == []
    assert repo.destinations(ag.id) == []


def test_drop_audit_counts_repeats_per_chat_sender_and_reason(repo: Repository) -> None:
    for _ in range(3):
        repo.record_drop(
            channel_type="cli",
            platform_id="x",
            reason="no_agent_wired",
            user_id="cli:eve",
            text="hello",
        )
    repo.record_drop(
        channel_type="cli", platform_id="x", reason="no_agent_engaged", user_id="cli:eve"
    )
    rows = {(d.reason, d.message_count) for d in repo.dropped()}
    assert rows == {("no_agent_wired", 3), ("no_agent_engaged", 1)}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("Team Chat", "team-chat"), ("  ", "unnamed"), ("Ünïcode!!", "n-code"), ("a--b", "a-b")],
)
def test_destination_names_are_normalised(raw: str, expected: str) -> None:
    assert normalize_destination_name(raw) == expected


def test_a_plain_transaction_commits_on_success_and_rolls_back_on_error(repo: Repository) -> None:
    repo.create_agent_group(name="Andy", folder="andy")
    with repo.db.plain() as conn:
        conn.execute("UPDATE agent_groups SET name = 'Robin' WHERE folder = 'andy'")
    with pytest.raises(RuntimeError), repo.db.plain() as conn:
        conn.execute("UPDATE agent_groups SET name = 'Lost' WHERE folder = 'andy'")
        raise RuntimeError("the job failed")
    with repo.db.plain(write=False) as conn:
        assert conn.execute("SELECT name FROM agent_groups").fetchall() == [("Robin",)]
        assert conn.in_transaction
    # The one pooled connection went back: the ORM gets it again at once.
    assert [g.name for g in repo.agent_groups()] == ["Robin"]


def test_a_failed_commit_leaves_the_one_connection_usable(repo: Repository) -> None:
    with repo.db.plain() as conn:
        conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        conn.execute(
            "CREATE TABLE child (parent_id INTEGER REFERENCES parent (id)"
            " DEFERRABLE INITIALLY DEFERRED)"
        )
    with pytest.raises(sqlite3.IntegrityError), repo.db.plain() as conn:
        conn.execute("INSERT INTO child VALUES (42)")  # checked, and refused, at COMMIT
    with repo.db.plain(write=False) as conn:
        assert conn.execute("SELECT COUNT(*) FROM child").fetchone() == (0,)
    repo.create_agent_group(name="Andy", folder="andy")  # the ORM gets it too
    assert [g.folder for g in repo.agent_groups()] == ["andy"]
