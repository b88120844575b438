"""Inbound messages that ended ``failed``: list them, and put one back in the queue on request."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select, update

from nanoclaw.contract.layout import SessionLayout
from nanoclaw.scheduling.tasks import message_text
from nanoclaw.sessions.schema import messages_in
from nanoclaw.sessions.store import SessionStore

RETRYABLE_KINDS = ("chat", "task")  # system rows are the agent's own requests: never replayed


@dataclass(frozen=True)
class FailedMessage:
    id: str
    kind: str
    timestamp: str
    tries: int
    channel_type: str | None
    platform_id: str | None
    text: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_failed(store: SessionStore, layout: SessionLayout) -> list[FailedMessage]:
    if not layout.inbound_db.exists():
        return []
    query = select(messages_in).where(messages_in.c.status == "failed").order_by(messages_in.c.seq)
    with store.engines.get(layout.inbound_db, readonly=True).connect() as conn:
        rows = conn.execute(query).all()
    return [
        FailedMessage(
            id=r.id,
            kind=r.kind,
            timestamp=r.timestamp,
            tries=r.tries,
            channel_type=r.channel_type,
            platform_id=r.platform_id,
            text=message_text(r.content),
        )
        for r in rows
    ]


def retry_failed(store: SessionStore, layout: SessionLayout, message_id: str) -> bool:
    """Make a failed chat or task row pending again with a fresh try count; False if none."""
    if not layout.inbound_db.exists():
        return False
    with store.write(layout) as conn:
        result = conn.execute(
            update(messages_in)
            .where(
                messages_in.c.id == message_id,
                messages_in.c.status == "failed",
                messages_in.c.kind.in_(RETRYABLE_KINDS),
            )
            .values(status="pending", tries=0, process_after=None)
        )
        return bool(result.rowcount)
