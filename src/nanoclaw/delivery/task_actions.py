"""Host side of the agent's task tools: their ``kind=task`` rows in the session's ``inbound.db``."""

# ``schedule_task``, ``update_task``, ``cancel_task``, ``pause_task`` and ``resume_task`` insert
# or change ``kind=task`` rows in the session's ``inbound.db`` (the host is its only writer;
# invariant 1).
#
# Every change acts on a whole series (``id = X OR series_id = X`` among live rows). The
# recurrence itself (the next occurrence after a run) is the sweep's job
# (``nanoclaw.scheduling.recurrence``); this module only writes what the agent asked for.

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import or_, select, update

from nanoclaw.contract.actions import (
    ActionName,
    ActionStatus,
    ScheduleTaskPayload,
    SeriesPayload,
    UpdateTaskPayload,
)
from nanoclaw.contract.sessiondb import InboundStatus
from nanoclaw.db.models import SessionRow
from nanoclaw.delivery.actions import ActionResult, PayloadHandler, SystemActions
from nanoclaw.errors import ValidationError
from nanoclaw.executors import Executors
from nanoclaw.scheduling.cron import validate_cron
from nanoclaw.scheduling.tasks import TaskControl, control_task
from nanoclaw.sessions.outbound_reader import OutboundRow
from nanoclaw.sessions.schema import messages_in
from nanoclaw.sessions.service import SessionService
from nanoclaw.sessions.store import InboundMessage
from nanoclaw.settings import Settings

LIVE = (InboundStatus.PENDING, InboundStatus.PAUSED)
_CONTROLS: dict[ActionName, tuple[TaskControl, str]] = {
    ActionName.CANCEL_TASK: ("cancel", "cancelled"),
    ActionName.PAUSE_TASK: ("pause", "paused"),
    ActionName.RESUME_TASK: ("resume", "resumed"),
}


class TaskActions:
    def __init__(
        self, *, executors: Executors, settings: Settings, sessions: SessionService
    ) -> None:
        self.executors = executors
        self.settings = settings
        self.sessions = sessions

    def install(self, actions: SystemActions) -> None:
        actions.register_payload(ActionName.SCHEDULE_TASK, ScheduleTaskPayload, self.schedule)
        actions.register_payload(ActionName.UPDATE_TASK, UpdateTaskPayload, self.update)
        for name in _CONTROLS:
            actions.register_payload(name, SeriesPayload, self._control_handler(name))

    async def schedule(
        self, session: SessionRow, row: OutboundRow, payload: ScheduleTaskPayload
    ) -> ActionResult:
        try:
            message = self._task_row(row, payload)
        except ValidationError as exc:
            return ActionResult(ActionStatus.ERROR, f"{ActionName.SCHEDULE_TASK}: {exc}")
        layout = await self.executors.central.run(self.sessions.layout, session)
        await self.executors.sessions.run(
            session.id, self.sessions.store.insert_messages, layout, [message]
        )
        repeat = (
            f", repeating {message.recurrence} ({message.recurrence_tz})"
            if message.recurrence
            else ""
        )
        return ActionResult(
            ActionStatus.OK,
            f"Task {message.id} scheduled for {message.process_after} (UTC){repeat}.",
        )

    def _task_row(self, row: OutboundRow, payload: ScheduleTaskPayload) -> InboundMessage:
        recurrence = validate_cron(payload.recurrence) if payload.recurrence else None
        content: dict[str, Any] = {"prompt": payload.prompt}
        if payload.script:
            content["script"] = payload.script
        return InboundMessage(
            id=payload.task_id,
            kind="task",
            content=content,
            channel_type=row.channel_type,
            platform_id=row.platform_id,
            thread_id=row.thread_id,
            trigger=1,
            process_after=payload.process_after,
            recurrence=recurrence,
            series_id=payload.task_id,
            recurrence_tz=self.settings.timezone if recurrence else None,
        )

    async def update(
        self, session: SessionRow, row: OutboundRow, payload: UpdateTaskPayload
    ) -> ActionResult:
        task_id = payload.task_id
        try:
            changes = self._changes(payload)
        except ValidationError as exc:
            return ActionResult(ActionStatus.ERROR, f"{ActionName.UPDATE_TASK}: {exc}")
        layout = await self.executors.central.run(self.sessions.layout, session)
        changed = await self.executors.sessions.run(
            session.id, self._apply_update, layout, task_id, changes
        )
        if not changed:
            return ActionResult(
                ActionStatus.ERROR, f"{ActionName.UPDATE_TASK}: no live task matched id {task_id}"
            )
        return ActionResult(ActionStatus.OK, f"Task {task_id} updated.")

    def _changes(self, payload: UpdateTaskPayload) -> dict[str, Any]:
        """What to change (the model refused a payload that changes nothing)."""
        changes: dict[str, Any] = {}
        if payload.prompt is not None:
            changes["prompt"] = payload.prompt
        if payload.script is not None:
            changes["script"] = payload.script or None  # "" removes it
        if payload.recurrence is not None:
            raw = payload.recurrence  # "" stops repeating
            changes["recurrence"] = validate_cron(raw) if raw else None
        if payload.process_after is not None:
            changes["process_after"] = payload.process_after
        return changes

    def _apply_update(self, layout: Any, task_id: str, changes: dict[str, Any]) -> int:
        match = (
            or_(messages_in.c.id == task_id, messages_in.c.series_id == task_id),
            messages_in.c.kind == "task",
            messages_in.c.status.in_(LIVE),
        )
        with self.sessions.store.write(layout) as conn:
            rows = conn.execute(select(messages_in.c.id, messages_in.c.content).where(*match)).all()
            for row_id, raw in rows:
                content = json.loads(raw)
                if "prompt" in changes:
                    content["prompt"] = changes["prompt"]
                if "script" in changes:
                    if changes["script"]:
                        content["script"] = changes["script"]
                    else:
                        content.pop("script", None)
                values: dict[str, Any] = {"content": json.dumps(content)}
                if "process_after" in changes:
                    values["process_after"] = changes["process_after"]
                if "recurrence" in changes:
                    values["recurrence"] = changes["recurrence"]
                    values["recurrence_tz"] = (
                        self.settings.timezone if changes["recurrence"] else None
                    )
                conn.execute(update(messages_in).where(messages_in.c.id == row_id).values(**values))
            return len(rows)

    def _control_handler(self, action: ActionName) -> PayloadHandler[SeriesPayload]:
        control, done = _CONTROLS[action]

        async def handler(
            session: SessionRow, row: OutboundRow, payload: SeriesPayload
        ) -> ActionResult:
            task_id = payload.task_id
            layout = await self.executors.central.run(self.sessions.layout, session)
            changed = await self.executors.sessions.run(
                session.id, control_task, self.sessions.store, layout, task_id, control
            )
            if not changed:
                return ActionResult(
                    ActionStatus.ERROR, f"{action}: no live task matched id {task_id}"
                )
            return ActionResult(ActionStatus.OK, f"Task {task_id} {done}.")

        return handler
