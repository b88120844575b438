"""What one routed message costs the host: central-DB transactions and inbound.db writes,
counted with SQLAlchemy engine events and around the session-DB contract's write helper (only
work done on behalf of the routed message: a context variable set around the call travels into
the worker threads it uses)."""

from __future__ import annotations

import contextvars
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

MAX_CENTRAL_TRANSACTIONS = 4
MAX_INBOUND_WRITES = 1


@dataclass
class Counts:
    begins: list[Engine] = field(default_factory=list)
    statements: list[tuple[Engine, str]] = field(default_factory=list)
    session_writes: list[Path] = field(default_factory=list)  # sessiondb.writing(path)


@contextmanager
def counting(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counts]:
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

    def on_statement(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if ROUTING.get():
            counts.statements.append((conn.engine, statement))

    event.listen(Engine, "begin", on_begin)
    event.listen(Engine, "before_cursor_execute", on_statement)
    try:
        yield counts
    finally:
        event.remove(Engine, "begin", on_begin)
        event.remove(Engine, "before_cursor_execute", on_statement)


async def test_one_routed_message_costs_at_most_four_central_transactions_and_one_inbound_write(
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
    with counting(monkeypatch) as counts:
        token = ROUTING.set(True)
        try:
            outcome = await host.router.route(message)
        finally:
            ROUTING.reset(token)
    assert [d.session_id for d in outcome.deliveries] == [session.id]
    central = [e for e in counts.begins if e is host.db.engine]
    inbound_writes = [e for e in counts.begins if e is inbound_writer] + [
        p for p in counts.session_writes if p == layout.inbound_db
    ]
    statements = [s for e, s in counts.statements if e is host.db.engine]
    print(f"route cost: {len(central)} central transactions, {len(statements)} statements")
    assert len(central) <= MAX_CENTRAL_TRANSACTIONS, statements
    assert len(inbound_writes) == MAX_INBOUND_WRITES
