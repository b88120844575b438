"""An accepted message the host could not hand to any session ends visibly, never lost.

Invariant 8 at the door: when routing fails after the channel handed a message over (a broken
session folder, a damaged DB, a bug), the router answers ``internal_error`` and calls this:
the message is recorded in ``unhandled_messages`` (listed by ``nanoclaw messages failed``), its
sender gets a durable host notice (channels that show the router's receipt, the CLI, already
got one), and the fault is logged once per interval per chat and cause, not once per message.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select

from nanoclaw.channels.base import InboundEvent
from nanoclaw.contract.fault_log import FaultLog, fault_key
from nanoclaw.db.central import CentralDB
from nanoclaw.db.models import UnhandledMessage
from nanoclaw.delivery.notices import Notifier
from nanoclaw.executors import Executors

log = logging.getLogger("nanoclaw.routing.unhandled")

UNHANDLED_TEXT = (
    "Sorry, your message could not be handled ({error}). It was recorded for the operator "
    "(nanoclaw messages failed); please send it again later."
)
ERROR_SHOWN_CHARS = 160
TEXT_KEPT_CHARS = 8000


@dataclass(frozen=True)
class UnhandledRow:
    """One ``unhandled_messages`` row, shaped like a failed session message for listings."""

    id: str
    kind: str
    timestamp: str
    tries: int
    channel_type: str | None
    platform_id: str | None
    text: str
    error: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_unhandled(db: CentralDB) -> list[UnhandledRow]:
    with db.session() as s:
        rows = list(s.scalars(select(UnhandledMessage).order_by(UnhandledMessage.id)))
    return [
        UnhandledRow(
            id=f"unhandled-{r.id}",
            kind="unrouted",
            timestamp=r.created_at.isoformat(),
            tries=1,
            channel_type=r.channel_type,
            platform_id=r.platform_id,
            text=r.text,
            error=r.error,
        )
        for r in rows
    ]


class UnhandledInbound:
    """Records the message, tells its sender, and logs the cause once per interval."""

    def __init__(
        self,
        *,
        executors: Executors,
        db: CentralDB,
        notices: Notifier,
        told_by_receipt: frozenset[str] = frozenset(),
        faults: FaultLog | None = None,
    ) -> None:
        """``told_by_receipt``: channels whose sender sees the router's receipt (the CLI), so no
        extra notice; ``faults`` defaults to this module's own."""
        self.executors = executors
        self.db = db
        self.notices = notices
        self.told_by_receipt = told_by_receipt
        self.faults = faults or FaultLog(log)

    async def handle(self, event: InboundEvent, exc: BaseException) -> None:
        where = f"{event.channel_type}/{event.platform_id}"
        # One line per chat and exception type per interval: the message text of a routing
        # fault names fresh ids (a new session's folder) each time, so it is not in the key.
        self.faults.report(
            (where, type(exc).__name__),
            logging.ERROR,
            "message %s in %s could not be handled: %s",
            event.message.id,
            where,
            exc,
            exc_info=True,
        )
        error = f"{type(exc).__name__}: {exc}"[:ERROR_SHOWN_CHARS]
        try:
            await self.executors.central.run(self._record, event, error)
        except Exception as record_exc:  # the central DB itself is failing: the log is all we have
            self.faults.report(
                fault_key("unhandled-record", record_exc),
                logging.ERROR,
                "cannot record unhandled message %s: %s (text: %r)",
                event.message.id,
                record_exc,
                event.message.text[:200],
            )
        if event.channel_type in self.told_by_receipt:
            return  # that channel shows the router's receipt to its sender already
        text = UNHANDLED_TEXT.format(error=error)
        try:
            await self.notices.notify(event.channel_type, event.platform_id, event.thread_id, text)
        except Exception as notify_exc:
            log.warning("cannot tell %s about its failed message: %s", where, notify_exc)

    def _record(self, event: InboundEvent, error: str) -> None:
        with self.db.session() as s:
            s.add(
                UnhandledMessage(
                    channel_type=event.channel_type,
                    platform_id=event.platform_id,
                    thread_id=event.thread_id,
                    message_id=event.message.id,
                    sender=event.message.sender,
                    text=event.message.text[:TEXT_KEPT_CHARS],
                    error=error,
                )
            )
