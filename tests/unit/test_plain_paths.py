"""The per-message central-DB paths in plain SQL read and write exactly what the ORM does."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select

from nanoclaw.admin.store import AdminStore, NewApproval
from nanoclaw.channels.cli.backlog import CliBacklog
from nanoclaw.contract.timeutil import to_iso
from nanoclaw.db.central import CentralDB
from nanoclaw.db.models import (
    CentralBase,
    CliChatState,
    CliReply,
    PendingApproval,
    SessionRow,
    UsageTurn,
)
from nanoclaw.db.repository import NewChat, Repository
from nanoclaw.errors import NotFoundError
from nanoclaw.sessions.service import SessionService
from nanoclaw.sessions.store import SessionStore
from nanoclaw.settings import Settings
from nanoclaw.usage.ledger import UsageLedger
from tests.conftest import REPO_ROOT

MOMENT = datetime(2026, 3, 4, 5, 6, 7, 8009, tzinfo=UTC)


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    db = CentralDB(path=tmp_path / "central.db", migrations_root=REPO_ROOT / "migrations")
    db.migrate()
    try:
        yield Repository(db)
    finally:
        db.dispose()


@pytest.fixture
def service(repo: Repository, tmp_path: Path) -> SessionService:
    return SessionService(repo=repo, store=SessionStore(sessions_root=tmp_path / "sessions"))


def _columns(row: CentralBase) -> dict[str, Any]:
    state = inspect(row)
    assert state.detached and not state.modified  # as a committed session leaves its rows
    return {attr.key: attr.loaded_value for attr in state.attrs}


def test_a_session_row_read_plain_is_the_orm_row_nulls_and_times_included(
    repo: Repository, service: SessionService
) -> None:
    group = repo.create_agent_group(name="Andy", folder="andy")
    chat = repo.ensure_messaging_group(channel_type="cli", platform_id="local")
    threaded = repo.create_session(
        agent_group_id=group.id, messaging_group_id=chat.id, thread_id="t1", mode="per-thread"
    )
    bare = repo.create_session(
        agent_group_id=group.id, messaging_group_id=None, thread_id=None, mode="agent-shared"
    )
    with repo.db.session() as s:
        row = s.get(SessionRow, threaded.id)
        assert row is not None
        row.last_exit_code, row.last_exit_log, row.last_active = 3, "boom", MOMENT
    for session_id in (threaded.id, bare.id):
        plain, layout = service.row_and_layout(session_id)
        with repo.db.session() as s:
            orm = s.get(SessionRow, session_id)
        assert orm is not None
        assert _columns(plain) == _columns(orm)
        assert layout == service.layout(orm)
    assert repo.session(threaded.id).last_active == MOMENT
    assert repo.session(bare.id).messaging_group_id is None
    assert repo.session(bare.id).last_exit_code is None
    with pytest.raises(NotFoundError) as missing:
        service.row_and_layout("sess-nope")
    assert (missing.value.kind, missing.value.key) == ("session", "sess-nope")


def test_open_cards_read_plain_are_the_orm_rows_newest_first(repo: Repository) -> None:
    store = AdminStore(repo.db)

    def card(title: str, chat: str, **fields: Any) -> str:
        new = NewApproval(
            kind="sender",
            title=title,
            question="Let them in?",
            options=[{"label": "Allow", "value": "allow"}],
            payload={"user": title},
            ttl_s=3600.0,
            **fields,
        )
        made = store.create_approval(new)
        assert made is not None
        store.set_card(made.id, "cli", chat, None if title == "b" else f"m-{title}")
        return made.id

    first = card("a", "local", dedup_key="sender:a", approver_user_id="cli:al")
    second = card("b", "local")
    store.set_stage(second, "name")
    decided = card("c", "local")
    assert store.decide(decided, status="denied", by="cli:al", decision="deny")
    card("d", "elsewhere")
    repo.ensure_messaging_group(channel_type="cli", platform_id="local")
    repo.ensure_messaging_group(channel_type="cli", platform_id="nobody")

    def cards_seen_by(user_id: str | None, chat: str) -> tuple[PendingApproval, ...]:
        facts = repo.route_facts("cli", chat, user_id=user_id, user_kind="cli", display_name=None)
        return facts.open_cards

    # Read with the route's facts, in its one transaction, for a known sender only.
    open_cards = cards_seen_by("cli:al", "local")
    assert [c.id for c in open_cards] == [second, first]
    for plain in open_cards:
        orm = store.approval(plain.id)
        assert orm is not None
        assert _columns(plain) == _columns(orm)
    assert open_cards[0].card_message_id is None and open_cards[0].stage == "name"
    assert open_cards[1].decided_at is None and open_cards[1].expires_at.tzinfo is not None
    assert cards_seen_by("cli:al", "nobody") == ()
    assert cards_seen_by(None, "local") == ()
    # A chat deleted while its card was pending, registered again by the approver's reply.
    gone = card("e", "gone")
    again = repo.route_facts(
        "cli",
        "gone",
        user_id="cli:al",
        user_kind="cli",
        display_name=None,
        new_chat=NewChat(is_group=False, unknown_sender_policy="strict"),
    )
    assert again.messaging_group is not None and [c.id for c in again.open_cards] == [gone]


def test_backlog_rows_written_plain_read_back_through_the_orm(tmp_path: Path) -> None:
    db = CentralDB(path=tmp_path / "central.db", migrations_root=REPO_ROOT / "migrations")
    db.migrate()
    times = iter([MOMENT + timedelta(seconds=n) for n in range(10)])
    backlog = CliBacklog(db=db, per_chat_max=2, clock=lambda: next(times))
    try:
        keyed, new = backlog.add("local", '{"text":"a"}', delivery_key="s1/1")
        assert new
        plain, _ = backlog.add("local", '{"text":"b"}')
        assert backlog.ack("local", [keyed, keyed + 1000]) == 1
        assert backlog.ack("local", [keyed]) == 0  # already acknowledged
        with db.session() as s:
            rows = {r.id: r for r in s.scalars(select(CliReply))}
        assert rows[keyed].created_at == MOMENT
        assert rows[keyed].delivered_at == MOMENT + timedelta(seconds=2)
        assert (rows[plain].delivered_at, rows[plain].delivery_key) == (None, None)
        assert rows[keyed].delivery_key == "s1/1"
        with db.plain(write=False) as conn:
            stored = conn.execute(
                "SELECT created_at, delivered_at FROM cli_replies WHERE id = ?", (keyed,)
            ).fetchone()
        assert stored == (to_iso(MOMENT), to_iso(MOMENT + timedelta(seconds=2)))
        for n in range(3):  # 2 kept unacknowledged: the first drop inserts the state, then adds
            backlog.add("local", f'{{"text":"c{n}"}}')
        with db.session() as s:
            state = s.get(CliChatState, "local")
            assert state is not None and state.dropped == 2
        assert backlog.take_dropped("local") == 2
        assert backlog.take_dropped("local") == 0
        assert backlog.take_dropped("never-seen") == 0
        assert backlog.counts("local") == (2, 1)
        assert backlog.counts("never-seen") == (0, 0)
    finally:
        db.dispose()


def test_usage_ingested_plain_reads_back_through_the_orm_once(
    repo: Repository, service: SessionService, settings: Settings
) -> None:
    group = repo.create_agent_group(name="Andy", folder="andy")
    session, layout = service.resolve(
        agent_group_id=group.id, messaging_group_id=None, thread_id=None, mode="agent-shared"
    )
    with sqlite3.connect(layout.outbound_db) as conn:  # the runner's rows, as it writes them
        conn.executemany(
            "INSERT INTO usage (id, turn_id, model, input_tokens, output_tokens,"
            " cache_read_tokens, cache_write_tokens, cost_usd, created_at)"
            " VALUES (?, ?, 'claude-sonnet-4-5', 10, 5, 0, 0, ?, ?)",
            [(1, "t1", 0.25, to_iso(MOMENT)), (2, "t2", 0.5, to_iso(MOMENT + timedelta(days=1)))],
        )
    conn.close()
    settings.timezone = "UTC"
    ledger = UsageLedger(settings=settings, repo=repo, sessions=service)
    assert ledger.ingest(session) == 2
    assert ledger.ingest(session) == 0
    # A new host reads what was copied from the central DB and copies nothing twice.
    assert UsageLedger(settings=settings, repo=repo, sessions=service).ingest(session) == 0
    with repo.db.session() as s:
        turns = list(s.scalars(select(UsageTurn).order_by(UsageTurn.runner_row_id)))
    assert [(t.runner_row_id, t.day, t.occurred_at, t.cost_usd) for t in turns] == [
        (1, "2026-03-04", MOMENT, 0.25),
        (2, "2026-03-05", MOMENT + timedelta(days=1), 0.5),
    ]
    assert {(t.session_id, t.agent_group_id, t.model) for t in turns} == {
        (session.id, group.id, "claude-sonnet-4-5")
    }
    assert ledger.spent(group.id, "2026-03-05") == 0.5
    assert ledger.spent(group.id, "2026-01-01") == 0.0


def test_usage_read_at_a_turns_end_is_copied_without_opening_the_file_again(
    repo: Repository, service: SessionService, settings: Settings
) -> None:
    group = repo.create_agent_group(name="Andy", folder="andy")
    session, layout = service.resolve(
        agent_group_id=group.id, messaging_group_id=None, thread_id=None, mode="agent-shared"
    )

    def runner_writes(row_id: int) -> None:
        with sqlite3.connect(layout.outbound_db) as conn:
            conn.execute(
                "INSERT INTO usage (id, turn_id, model, input_tokens, output_tokens,"
                " cache_read_tokens, cache_write_tokens, cost_usd, created_at)"
                " VALUES (?, ?, 'claude-sonnet-4-5', 10, 5, 0, 0, 0.25, ?)",
                (row_id, f"t{row_id}", to_iso(MOMENT)),
            )
        conn.close()

    settings.timezone = "UTC"
    ledger = UsageLedger(settings=settings, repo=repo, sessions=service)
    runner_writes(1)
    with sqlite3.connect(layout.outbound_db) as pass_conn:  # the delivery pass's connection
        ledger.read_at_turn_end(session.id, pass_conn)  # no watermark yet: nothing kept
        assert ledger.ingest(session) == 1  # read from the file itself
        runner_writes(2)
        ledger.read_at_turn_end(session.id, pass_conn)
        ledger.read_at_turn_end(session.id, pass_conn)  # a second pass offers the same row
    pass_conn.close()
    layout.outbound_db.unlink()  # ingest now cannot read the file: the offered row is all
    assert ledger.ingest(session) == 1
    assert ledger.ingest(session) == 0  # taken once, and nothing left to read
    with repo.db.session() as s:
        ids = [t.runner_row_id for t in s.scalars(select(UsageTurn).order_by(UsageTurn.id))]
    assert ids == [1, 2]
