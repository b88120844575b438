"""The inbound write of a routing plan: one ``messages_in`` row per planned session, attachments
saved beneath the session folder, a new session created when the plan found none.

A new session is found or created on the central thread (under its key's lock: both DBs exist
before the first write); attachments are saved on the session's executor lane and the row is
written through :class:`~nanoclaw.sessions.writes.SessionWrites` (the write worker, else that
lane), so one session's disk commit never holds up other chats' central work."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from typing import Protocol

from nanoclaw.channels.base import InboundEvent
from nanoclaw.contract.confined import create_file
from nanoclaw.contract.layout import SessionLayout
from nanoclaw.errors import NanoclawError
from nanoclaw.executors import Executors
from nanoclaw.routing.outcome import Delivery
from nanoclaw.routing.plan import PlannedWrite
from nanoclaw.sessions.activity import SessionActivity
from nanoclaw.sessions.inbound_rows import InboundMessage
from nanoclaw.sessions.paths import safe_name
from nanoclaw.sessions.service import SessionService
from nanoclaw.sessions.writes import SessionWrites

log = logging.getLogger("nanoclaw.routing.write")


class InboundWriter(Protocol):
    async def write(
        self, event: InboundEvent, writes: Sequence[PlannedWrite], user_id: str | None
    ) -> list[Delivery]:
        """Write every planned row, in order; the sessions written are touched."""
        ...


def _inbox_folder(message_id: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9._-]", "_", message_id)[:48].strip("._") or "msg"
    return f"{readable}-{hashlib.sha1(message_id.encode()).hexdigest()[:8]}"


class SessionInboundWriter:
    def __init__(
        self,
        *,
        executors: Executors,
        sessions: SessionService,
        activity: SessionActivity,
        writes: SessionWrites | None = None,
    ) -> None:
        self.executors = executors
        self.sessions = sessions
        self.activity = activity
        self.writes = writes or SessionWrites(executors=executors, store=sessions.store)

    async def write(
        self, event: InboundEvent, writes: Sequence[PlannedWrite], user_id: str | None
    ) -> list[Delivery]:
        deliveries: list[Delivery] = []
        try:
            for planned in writes:
                deliveries.append(await self._write_one(event, planned, user_id))
        finally:
            # Every session written is marked active (even when a later write failed); the
            # marks reach the central DB in batches, off the message path.
            self.activity.mark(d.session_id for d in deliveries)
        return deliveries

    async def _write_one(
        self, event: InboundEvent, planned: PlannedWrite, user_id: str | None
    ) -> Delivery:
        if planned.session_id is not None:
            session_id = planned.session_id
            layout = self.sessions.store.layout(planned.agent_folder, session_id)
        else:  # find-or-create under the key's lock: a concurrent message may have made it
            session, layout = await self.executors.central.run(
                lambda: self.sessions.resolve(
                    agent_group_id=planned.agent_group_id,
                    messaging_group_id=planned.messaging_group_id,
                    thread_id=planned.thread_id,
                    mode=planned.mode,
                )
            )
            session_id = session.id
        attachments = None
        if event.message.attachments:
            attachments = await self.executors.sessions.run(
                session_id, self._save_attachments, layout, planned.message_id, event
            )
        (seq,) = await self.writes.insert_messages(
            session_id, layout, [_row(event, planned, user_id, attachments)]
        )
        return Delivery(
            session_id, planned.agent_group_id, planned.message_id, seq, planned.trigger
        )

    def _save_attachments(
        self, layout: SessionLayout, message_id: str, event: InboundEvent
    ) -> list[dict[str, str | None]]:
        saved: list[dict[str, str | None]] = []
        folder = _inbox_folder(message_id)
        for index, att in enumerate(event.message.attachments):
            name = att.name
            try:
                safe_name(name)
            except NanoclawError:
                name = f"attachment-{index}"
            entry: dict[str, str | None] = {"name": name, "mime": att.mime}
            if att.data is not None:
                # Through the session folder's descriptor, O_EXCL: never follows or overwrites.
                if not create_file(
                    layout.root, "inbox", safe_name(folder), name, data=att.data, make_dirs=True
                ):
                    log.info("attachment %s/%s already saved (a re-delivered event)", folder, name)
                entry["path"] = f"inbox/{folder}/{name}"
            elif att.url:
                entry["url"] = att.url
            saved.append(entry)
        return saved


def _row(
    event: InboundEvent,
    planned: PlannedWrite,
    user_id: str | None,
    attachments: list[dict[str, str | None]] | None,
) -> InboundMessage:
    """The ``messages_in`` row of one planned write (attachments already saved)."""
    msg = event.message
    content: dict[str, object] = {
        "text": msg.text,
        "sender": msg.sender,
        "sender_id": user_id,
        "sender_name": msg.sender_name,
        "platform_message_id": msg.id,
    }
    if msg.reply_to is not None:
        content["reply_to"] = msg.reply_to.to_dict()
    if attachments is not None:
        content["attachments"] = attachments
    return InboundMessage(
        id=planned.message_id,
        kind=msg.kind if msg.kind in ("chat", "task", "webhook") else "chat",
        content=content,
        channel_type=event.channel_type,
        platform_id=event.platform_id,
        thread_id=event.thread_id,
        trigger=planned.trigger,
    )
