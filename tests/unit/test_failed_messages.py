"""Failed inbound rows: listed with their text, and only chat or task rows are put back."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select, update

from nanoclaw.sessions.failed import list_failed, retry_failed
from nanoclaw.sessions.schema import messages_in
from nanoclaw.sessions.store import InboundMessage, SessionStore


def test_list_and_retry_failed_rows(tmp_path: Path) -> None:
    store = SessionStore(sessions_root=tmp_path / "s")
    layout = store.ensure("andy", "sess-1")
    rows = [
        InboundMessage(id="c1", kind="chat", content={"text": "hello"}, channel_type="cli",
                       platform_id="local"),
        InboundMessage(id="s1", kind="system", content={"action": "x"}),
        InboundMessage(id="ok", kind="chat", content={"text": "fine"}),
    ]  # fmt: skip
    store.insert_messages(layout, rows)
    with store.write(layout) as conn:
        conn.execute(
            update(messages_in)
            .where(messages_in.c.id.in_(["c1", "s1"]))
            .values(status="failed", tries=5, process_after="2026-01-01T00:00:00.000Z")
        )
    failed = list_failed(store, layout)
    assert [(m.id, m.kind, m.tries, m.text) for m in failed] == [
        ("c1", "chat", 5, "hello"),
        ("s1", "system", 5, ""),
    ]
    assert retry_failed(store, layout, "s1") is False  # the agent's own request: never replayed
    assert retry_failed(store, layout, "ok") is False  # not failed
    assert retry_failed(store, layout, "c1") is True
    assert retry_failed(store, layout, "c1") is False  # already pending again
    with store.engines.get(layout.inbound_db, readonly=True).connect() as conn:
        row = conn.execute(select(messages_in).where(messages_in.c.id == "c1")).one()
    assert (row.status, row.tries, row.process_after) == ("pending", 0, None)
    assert [m.id for m in list_failed(store, layout)] == ["s1"]
