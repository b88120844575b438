"""Where the host's per-message inbound.db writes run: the write worker, else the session's lane.

The inbound row of each message and the delivery record of each reply go to the session-DB
write worker (``nanoclaw.sessions.write_worker``) when the host has one; when it has none
(one CPU, ``NANOCLAW_SESSION_WRITE_WORKER=0``, in-process tests) or it is down, they run on the
session's lane in the host, as every other session-DB job does. Both writes are idempotent (an
existing message id keeps its seq; a terminal delivery record is never overwritten), so a call
whose worker died in flight is simply written again here: nothing is lost or doubled.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from nanoclaw.contract.layout import SessionLayout
from nanoclaw.executors import Executors
from nanoclaw.sessions.inbound_rows import InboundMessage, Inserted
from nanoclaw.sessions.store import SessionStore
from nanoclaw.sessions.write_client import WriteWorker, WriteWorkerUnavailableError
from nanoclaw.sessions.write_protocol import WriteOp, WriteWorkerGoneError

log = logging.getLogger("nanoclaw.write_worker")

_FALL_BACK = (WriteWorkerGoneError, WriteWorkerUnavailableError)


class SessionWrites:
    """``await writes.insert_messages(session_id, layout, rows)``, ``record_delivery(...)``."""

    def __init__(
        self, *, executors: Executors, store: SessionStore, worker: WriteWorker | None = None
    ) -> None:
        self.executors = executors
        self.store = store
        self.worker = worker

    async def insert_messages(
        self, session_id: str, layout: SessionLayout, messages: Sequence[InboundMessage]
    ) -> list[int]:
        """Insert rows with fresh even seqs (an existing id keeps its seq); their seqs."""
        if self.worker is not None:
            try:
                inserted: Inserted = await self.worker.call(
                    WriteOp.INSERT_MESSAGES, session_id, layout.inbound_db, list(messages)
                )
            except _FALL_BACK as exc:
                log.debug("insert into %s written in the host: %s", session_id, exc)
            else:
                self.store.notify_inserted(layout, inserted)
                return list(inserted.seqs)
        return await self.executors.sessions.run(
            session_id, self.store.insert_messages, layout, messages
        )

    async def record_delivery(
        self,
        session_id: str,
        layout: SessionLayout,
        message_out_id: str,
        *,
        linger: bool = False,
        **outcome: Any,
    ) -> None:
        """One delivery record (``SessionStore.record_delivery``'s keywords). ``linger``: the
        last reply of a delivery pass, whose record may wait a few milliseconds in the worker
        to share a commit with the session's next write (the user's next message)."""
        if self.worker is not None:
            try:
                await self.worker.call(
                    WriteOp.RECORD_DELIVERY,
                    session_id,
                    layout.inbound_db,
                    message_out_id,
                    linger=linger,
                    **outcome,
                )
            except _FALL_BACK as exc:
                log.debug("delivery record of %s written in the host: %s", session_id, exc)
            else:
                return
        await self.executors.sessions.run(
            session_id, self.store.record_delivery, layout, message_out_id, **outcome
        )

    async def start(self) -> None:
        if self.worker is not None:
            await self.worker.start()

    async def close(self) -> None:
        if self.worker is not None:
            await self.worker.close()
