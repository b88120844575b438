"""The due-work timer does not re-read a session whose due time it was given, unless it changed."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

from nanoclaw.cancel import cancel_and_wait
from nanoclaw.contract.dbwatch import change_signature
from nanoclaw.contract.layout import SessionLayout
from nanoclaw.sessions.store import InboundMessage, SessionStore
from nanoclaw.sweep.timer import DueTimer
from nanoclaw.tasks import TaskOwner
from tests.helpers import shared_executors, wait_for_state


async def test_a_restored_session_is_re_read_only_if_its_inbound_db_changed_since(
    tmp_path: Path,
) -> None:
    store = SessionStore(sessions_root=tmp_path / "sessions")
    quiet = store.ensure("andy", "sess-quiet")
    changed = store.ensure("andy", "sess-changed")
    reads: list[str] = []

    def next_due(layout: SessionLayout, after: str) -> str | None:
        reads.append(layout.root.name)
        return None

    async def on_due(session_id: str, due: datetime) -> None:
        raise AssertionError("nothing is due")

    owner = TaskOwner()
    owner.open()
    timer = DueTimer(
        executors=shared_executors(), on_due=on_due, next_due=next_due, spawn=owner.spawn
    )
    for layout in (quiet, changed):
        signature = change_signature(layout.inbound_db)
        timer.restore(layout.root.name, layout, None, inbound=signature)
    # Written after its due time was recorded, before the timer first watches it.
    store.insert_messages(changed, [InboundMessage(id="m1", kind="chat", content={"text": "x"})])

    task = asyncio.create_task(timer.run())
    try:
        await wait_for_state(lambda: reads)
        # Both were examined in the same first scan, the quiet one first.
        assert reads == ["sess-changed"]
    finally:
        await cancel_and_wait(task)
        await owner.close(timeout_s=5)
