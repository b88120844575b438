"""The durable outbox of host notices: recorded first, sent, and retried until a chat has them.

A host notice (a failed message, a denial, a budget stop) must reach its chat even when the
channel is down at that moment or the host is killed right after deciding to send it. Each
notice is a ``host_notices`` row before the first attempt; a failed attempt is retried with
backoff ``NOTICE_RETRY_BASE_S·2^n`` (capped) by the retry loop, which also resumes a previous
run's pending notices at start-up. The loop sleeps until the earliest pending notice's next
attempt (woken when an attempt fails; at least ``NOTICE_MIN_WAIT_S``, at most ``NOTICE_POLL_S``
between looks at the table): an idle host does not query it every second. After
``MAX_NOTICE_ATTEMPTS`` the row ends ``failed`` (logged).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import delete, func, select

from nanoclaw.contract.timeutil import utc_now
from nanoclaw.db.central import CentralDB
from nanoclaw.db.models import HostNotice
from nanoclaw.executors import Executors

log = logging.getLogger("nanoclaw.delivery.notices")

NOTICE_RETRY_BASE_S = 2.0
NOTICE_RETRY_MAX_S = 300.0
MAX_NOTICE_ATTEMPTS = 12  # about half an hour of retries
NOTICE_POLL_S = 60.0  # the longest sleep between looks at the table with nothing due sooner
# The shortest: a notice due now may be in flight (skipped by the retry pass) for a while.
NOTICE_MIN_WAIT_S = 1.0
SENT_NOTICES_KEPT_FOR_S = 7 * 24 * 3600.0


class Notifier(Protocol):
    """Anything that can send a host notice to a chat; True when the platform accepted it."""

    async def notify(
        self,
        channel_type: str | None,
        platform_id: str | None,
        thread_id: str | None,
        text: str,
        failure: str | None = None,
    ) -> bool: ...


@dataclass(frozen=True)
class Notice:
    id: int
    channel_type: str
    platform_id: str
    thread_id: str | None
    text: str
    # Set when the notice stands in for an answer that will not come (e.g. "not_processed"):
    # channels mark the message with it, so clients tell it from a reply without reading text.
    failure: str | None = None


def retry_delay_s(attempts: int) -> float:
    """The wait after the ``attempts``-th failed attempt (1-based)."""
    return float(min(NOTICE_RETRY_MAX_S, NOTICE_RETRY_BASE_S * 2 ** max(0, attempts - 1)))


class NoticeOutbox:
    """A ``Notifier`` that records each notice and retries it through ``sender`` until sent."""

    def __init__(
        self,
        *,
        executors: Executors,
        db: CentralDB,
        sender: Notifier,
        clock: Callable[[], datetime] = utc_now,
        poll_s: float = NOTICE_POLL_S,
    ) -> None:
        self.executors = executors
        self.db = db
        self.sender = sender
        self.clock = clock
        self.poll_s = poll_s
        # Ids being attempted right now: the retry loop skips them, so no notice goes twice.
        self._in_flight: set[int] = set()
        self._changed = asyncio.Event()  # an attempt failed: its retry time is news to the loop

    async def notify(
        self,
        channel_type: str | None,
        platform_id: str | None,
        thread_id: str | None,
        text: str,
        failure: str | None = None,
    ) -> bool:
        """Record the notice and try it now; False means it is queued for a retry."""
        if not channel_type or not platform_id:
            return False
        notice = Notice(0, channel_type, platform_id, thread_id, text, failure)
        notice_id = await self.executors.central.run(self._record, notice)
        return await self._attempt(replace(notice, id=notice_id))

    async def run(self) -> None:
        """Retry due notices until cancelled (start-up included: a killed host's are resumed)."""
        await self.executors.central.run(self._prune)
        while True:
            self._changed.clear()
            await self.retry_due()
            next_at = await self.executors.central.run(self._next_attempt_at)
            timeout_s = self.poll_s
            if next_at is not None:
                due_in_s = (next_at - self.clock()).total_seconds()
                timeout_s = min(timeout_s, max(NOTICE_MIN_WAIT_S, due_in_s))
            # Not wait_for: on Python 3.11 it can swallow a cancel that races the event.
            waiter = asyncio.ensure_future(self._changed.wait())
            try:
                await asyncio.wait({waiter}, timeout=timeout_s)
            finally:
                waiter.cancel()

    async def retry_due(self) -> int:
        """Attempt every pending notice whose time has come; returns how many were sent."""
        due = await self.executors.central.run(self._due)
        sent = 0
        for notice in due:
            if notice.id not in self._in_flight:
                sent += await self._attempt(notice)
        return sent

    def pending(self) -> list[HostNotice]:
        with self.db.session() as s:
            query = select(HostNotice).where(HostNotice.status == "pending")
            return list(s.scalars(query.order_by(HostNotice.id)))

    # -- internals -----------------------------------------------------------------------------
    async def _attempt(self, notice: Notice) -> bool:
        self._in_flight.add(notice.id)
        try:
            ok = await self.sender.notify(
                notice.channel_type,
                notice.platform_id,
                notice.thread_id,
                notice.text,
                failure=notice.failure,
            )
            await self.executors.central.run(self._after_attempt, notice.id, ok)
            if not ok:
                self._changed.set()
        finally:
            self._in_flight.discard(notice.id)
        return ok

    def _record(self, notice: Notice) -> int:
        with self.db.session() as s:
            row = HostNotice(
                channel_type=notice.channel_type,
                platform_id=notice.platform_id,
                thread_id=notice.thread_id,
                text=notice.text,
                failure=notice.failure,
                next_attempt_at=self.clock(),
                created_at=self.clock(),
            )
            s.add(row)
            s.flush()
            return int(row.id)

    def _after_attempt(self, notice_id: int, ok: bool) -> None:
        now = self.clock()
        with self.db.session() as s:
            notice = s.get(HostNotice, notice_id)
            if notice is None:
                return
            notice.attempts += 1
            if ok:
                notice.status, notice.sent_at = "sent", now
            elif notice.attempts >= MAX_NOTICE_ATTEMPTS:
                notice.status = "failed"
                log.error(
                    "notice %s to %s/%s given up after %d attempts",
                    notice_id,
                    notice.channel_type,
                    notice.platform_id,
                    notice.attempts,
                )
            else:
                notice.next_attempt_at = now + timedelta(seconds=retry_delay_s(notice.attempts))
                log.warning("notice %s not delivered; retry %d", notice_id, notice.attempts)

    def _due(self) -> list[Notice]:
        with self.db.session() as s:
            query = (
                select(HostNotice)
                .where(HostNotice.status == "pending", HostNotice.next_attempt_at <= self.clock())
                .order_by(HostNotice.id)
            )
            return [
                Notice(int(r.id), r.channel_type, r.platform_id, r.thread_id, r.text, r.failure)
                for r in s.scalars(query)
            ]

    def _next_attempt_at(self) -> datetime | None:
        with self.db.session() as s:
            found = s.scalar(
                select(func.min(HostNotice.next_attempt_at)).where(HostNotice.status == "pending")
            )
        if found is None:
            return None
        return found if found.tzinfo is not None else found.replace(tzinfo=UTC)

    def _prune(self) -> None:
        cutoff = self.clock() - timedelta(seconds=SENT_NOTICES_KEPT_FOR_S)
        with self.db.session() as s:
            s.execute(
                delete(HostNotice).where(
                    HostNotice.status != "pending", HostNotice.created_at < cutoff
                )
            )
