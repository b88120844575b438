"""What one routed message costs the host: central-DB transactions and inbound.db writes.

Central transactions are counted by the SQL the one central connection runs (its ``sqlite3``
trace callback sees the plain-``sqlite3`` paths and the ORM's alike); ``inbound.db`` writes
around the session-DB contract's write helper and by engine events. Only work done on behalf
of the routed message counts: a context variable set around the call travels into the worker
threads it uses.
"""

from __future__ import annotations

import contextvars
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from nanoclaw.channels.base import InboundEvent, InboundMessage
from nanoclaw.contract import sessiondb
from nanoclaw.host import Host
from tests.helpers import make_agent, say, texts, wire_chat

ROUTING: contextvars.ContextVar[bool] = contextvars.ContextVar("routing", default=False)

MAX_CENTRAL_TRANSACTIONS = 1
MAX_INBOUND_WRITES = 1


@dataclass
class Counts:
    begins: list[Engine] = field(default_factory=list)
    central: list[str] = field(default_factory=list)  # SQL the central connection ran
    session_writes: list[Path] = field(default_factory=list)  # sessiondb.writing(path)


@contextmanager
def counting(monkeypatch: pytest.MonkeyPatch, central: sqlite3.Connection) -> Iterator[Counts]:
    counts = Counts()
    real_writing = sessiondb.writing

    def writing(path: Path, **kwargs: Any) -> Any:
        if ROUTING.get():
            counts.session_writes.append(path)
        return real_writing(path, **kwargs)

    monkeypatch.setattr(sessiondb, "writing", writing)

    def on_begin(conn: Any) -> None:
        if ROUTING.get():
            counts.begins.append(conn.engine)

    def on_central_sql(statement: str) -> None:
        if ROUTING.get():
            counts.central.append(statement)

    event.listen(Engine, "begin", on_begin)
    central.set_trace_callback(on_central_sql)
    try:
        yield counts
    finally:
        event.remove(Engine, "begin", on_begin)
        central.set_trace_callback(None)


def central_connection(host: Host) -> sqlite3.Connection:
    """The central engine's one pooled connection (every central statement runs on it)."""
    fairy = host.db.engine.raw_connection()
    try:
        conn = fairy.driver_connection
        assert isinstance(conn, sqlite3.Connection)
        return conn
    finally:
        fairy.close()


def transactions(statements: list[str]) -> list[list[str]]:
    """The statements grouped by ``BEGIN`` … ``COMMIT``/``ROLLBACK``; a statement run outside
    one is a transaction of its own (SQLite's autocommit)."""
    grouped: list[list[str]] = []
    open_ = False
    for sql in statements:
        if sql.startswith("BEGIN") or not open_:
            grouped.append([])
            open_ = sql.startswith("BEGIN")
        grouped[-1].append(sql)
        if sql.startswith(("COMMIT", "ROLLBACK")):
            open_ = False
    return grouped


def is_activity_batch(transaction: list[str]) -> bool:
    """``SessionActivity``'s batched ``last_active`` write (``Repository.touch_sessions``, a
    transaction of that one statement): started by the route, written 0.25 s later off its
    path; on a slow machine it can land inside the counted window."""
    body = [sql for sql in transaction if not sql.startswith(("BEGIN", "COMMIT"))]
    return len(body) == 1 and body[0].startswith("UPDATE sessions SET last_active")


async def test_one_routed_message_costs_one_central_transaction_and_one_inbound_write(
    host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = make_agent(host.repo, "Andy")
    wire_chat(host.repo, agent, "local")
    warm = await say(host.settings.cli_socket, "hello")  # session, runner and caches exist
    assert texts(warm), warm
    (session,) = host.repo.sessions()
    layout = host.sessions.layout(session)
    inbound_writer = host.engines.get(layout.inbound_db)

    message = InboundEvent(
        channel_type="cli",
        platform_id="local",
        thread_id=None,
        message=InboundMessage(id="counted-1", text="and again", sender="alice", is_mention=True),
    )
    with counting(monkeypatch, central_connection(host)) as counts:
        token = ROUTING.set(True)
        try:
            outcome = await host.router.route(message)
        finally:
            ROUTING.reset(token)
    assert [d.session_id for d in outcome.deliveries] == [session.id]
    central = [t for t in transactions(counts.central) if not is_activity_batch(t)]
    inbound_writes = [e for e in counts.begins if e is inbound_writer] + [
        p for p in counts.session_writes if p == layout.inbound_db
    ]
    print(f"route cost: {len(central)} central transactions: {central}")
    assert len(central) == MAX_CENTRAL_TRANSACTIONS, counts.central
    assert len(inbound_writes) == MAX_INBOUND_WRITES
