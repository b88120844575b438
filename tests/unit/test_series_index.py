"""The index of sessions without a recurring row: what takes a session out, and a raced look."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update

from nanoclaw.contract.layout import SessionLayout
from nanoclaw.scheduling.series import SeriesIndex, has_series
from nanoclaw.sessions.schema import messages_in
from nanoclaw.sessions.store import InboundMessage, SessionStore


@pytest.fixture
def store(tmp_path: Path) -> SessionStore:
    return SessionStore(sessions_root=tmp_path / "sessions")


def _row(mid: str, *, recurrence: str | None = None) -> InboundMessage:
    return InboundMessage(
        id=mid,
        kind="task" if recurrence else "chat",
        content={"text": mid},
        process_after="2999-01-01T00:00:00.000000Z" if recurrence else None,
        recurrence=recurrence,
    )


def _looked(index: SeriesIndex, layout: SessionLayout) -> None:
    """What the sweep does after a turn that re-armed nothing."""
    epoch = index.epoch()
    if not has_series(layout):
        index.note_none(layout.root.name, looked_at_epoch=epoch)


def test_a_session_leaves_the_index_on_a_recurring_insert_or_any_generic_write(
    store: SessionStore,
) -> None:
    index = SeriesIndex()
    store.add_series_listener(index.written)
    layout = store.ensure("andy", "sess-1")
    store.insert_messages(layout, [_row("chat-1")])
    _looked(index, layout)
    assert index.none_in("sess-1")
    store.insert_messages(layout, [_row("chat-2")])  # a plain message changes nothing
    assert index.none_in("sess-1")

    store.insert_messages(layout, [_row("task-1", recurrence="0 9 * * *")])
    assert not index.none_in("sess-1")
    _looked(index, layout)  # the look finds the series: it stays out
    assert not index.none_in("sess-1")

    other = store.ensure("andy", "sess-2")
    _looked(index, other)
    assert index.none_in("sess-2")
    with store.write(other) as conn:  # e.g. update_task giving a one-off task a recurrence
        conn.execute(update(messages_in).values(recurrence="0 9 * * *"))
    assert not index.none_in("sess-2")


def test_a_look_that_raced_a_write_is_not_recorded(store: SessionStore) -> None:
    index = SeriesIndex()
    store.add_series_listener(index.written)
    layout = store.ensure("andy", "sess-1")
    epoch = index.epoch()
    assert not has_series(layout)
    # Between the look and its result, a series is scheduled there.
    store.insert_messages(layout, [_row("task-1", recurrence="0 9 * * *")])
    index.note_none("sess-1", looked_at_epoch=epoch)
    assert not index.none_in("sess-1")
