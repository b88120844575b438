"""Host side of the agent's task tools: ``schedule_task``, ``update_task``, ``cancel_task``,
``pause_task`` and ``resume_task`` insert or change ``kind=task`` rows in the session's
``inbound.db`` (the host is its only writer; invariant 1).

Every change acts on a whole series (``id = X OR series_id = X`` among live rows). The
recurrence itself (the next occurrence after a run) is the sweep's job
(``nanoclaw.scheduling.recurrence``); this module only writes what the agent asked for.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import or_, select, update

from nanoclaw.contract.timeutil import parse_iso, to_iso
from nanoclaw.db.models import SessionRow
from nanoclaw.delivery.actions import ActionResult, SystemActions
from nanoclaw.errors import ValidationError
from nanoclaw.executors import Executors
from nanoclaw.scheduling.cron import validate_cron
from nanoclaw.scheduling.tasks import TaskControl, control_task
from nanoclaw.sessions.outbound_reader import OutboundRow
from nanoclaw.sessions.schema import messages_in
from nanoclaw.sessions.service import SessionService
from nanoclaw.sessions.store import InboundMessage
from nanoclaw.settings import Settings

TASK_ID_RE = re.compile(r"^task-[A-Za-z0-9_-]{1,64}$")
MAX_PROMPT_CHARS = 20_000
MAX_SCRIPT_CHARS = 20_000
LIVE = ("pending", "paused")
_CONTROLS: dict[str, tuple[TaskControl, str]] = {
    "cancel_task": ("cancel", "cancelled"),
    "pause_task": ("pause", "paused"),
    "resume_task": ("resume", "resumed"),
}


def _text(content: dict[str, Any], key: str, limit: int, *, required: bool = False) -> str | None:
    value = content.get(key)
    if value is None or (value == "" and not required):
        if required:
            raise ValidationError(f"'{key}' is required", field=key)
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValidationError(f"'{key}' must be a non-empty string", field=key)
    if len(value) > limit:
        raise ValidationError(f"'{key}' is longer than {limit} characters", field=key)
    return value


def _when(raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValidationError("'process_after' must be an ISO-8601 time", field="process_after")
    try:
        return to_iso(parse_iso(raw))
    except ValueError as exc:
        raise ValidationError(
            f"'process_after' is not a time: {raw!r}", field="process_after"
        ) from exc


def _task_id(content: dict[str, Any]) -> str:
    value = content.get("task_id")
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("'task_id' is required", field="task_id")
    return value.strip()


class TaskActions:
    def __init__(
        self, *, executors: Executors, settings: Settings, sessions: SessionService
    ) -> None:
        self.executors = executors
        self.settings = settings
        self.sessions = sessions

    def install(self, actions: SystemActions) -> None:
        actions.register("schedule_task", self.schedule)
        actions.register("update_task", self.update)
        for name in _CONTROLS:
            actions.register(name, self._control_handler(name))

    async def schedule(self, session: SessionRow, row: OutboundRow) -> ActionResult:
        try:
            message = self._task_row(row)
        except ValidationError as exc:
            return ActionResult("error", f"schedule_task: {exc}")
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
            "ok", f"Task {message.id} scheduled for {message.process_after} (UTC){repeat}."
        )

    def _task_row(self, row: OutboundRow) -> InboundMessage:
        content = row.content
        task_id = _task_id(content)
        if not TASK_ID_RE.match(task_id):
            raise ValidationError(f"invalid task id {task_id!r}", field="task_id")
        prompt = _text(content, "prompt", MAX_PROMPT_CHARS, required=True)
        script = _text(content, "script", MAX_SCRIPT_CHARS)
        recurrence = content.get("recurrence") or None
        if recurrence is not None:
            recurrence = validate_cron(str(recurrence))
        payload: dict[str, Any] = {"prompt": prompt}
        if script:
            payload["script"] = script
        return InboundMessage(
            id=task_id,
            kind="task",
            content=payload,
            channel_type=row.channel_type,
            platform_id=row.platform_id,
            thread_id=row.thread_id,
            trigger=1,
            process_after=_when(content.get("process_after")),
            recurrence=recurrence,
            series_id=task_id,
            recurrence_tz=self.settings.timezone if recurrence else None,
        )

    async def update(self, session: SessionRow, row: OutboundRow) -> ActionResult:
        try:
            task_id = _task_id(row.content)
            changes = self._changes(row.content)
        except ValidationError as exc:
            return ActionResult("error", f"update_task: {exc}")
        layout = await self.executors.central.run(self.sessions.layout, session)
        changed = await self.executors.sessions.run(
            session.id, self._apply_update, layout, task_id, changes
        )
        if not changed:
            return ActionResult("error", f"update_task: no live task matched id {task_id}")
        return ActionResult("ok", f"Task {task_id} updated.")

    def _changes(self, content: dict[str, Any]) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        if content.get("prompt") is not None:
            changes["prompt"] = _text(content, "prompt", MAX_PROMPT_CHARS, required=True)
        if "script" in content:
            changes["script"] = _text(content, "script", MAX_SCRIPT_CHARS)  # "" clears
        if "recurrence" in content:
            raw = content.get("recurrence") or None
            changes["recurrence"] = validate_cron(str(raw)) if raw else None
        if content.get("process_after") is not None:
            changes["process_after"] = _when(content["process_after"])
        if not changes:
            raise ValidationError("nothing to change", field="task_id")
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

    def _control_handler(self, action: str) -> Any:
        control, done = _CONTROLS[action]

        async def handler(session: SessionRow, row: OutboundRow) -> ActionResult:
            try:
                task_id = _task_id(row.content)
            except ValidationError as exc:
                return ActionResult("error", f"{action}: {exc}")
            layout = await self.executors.central.run(self.sessions.layout, session)
            changed = await self.executors.sessions.run(
                session.id, control_task, self.sessions.store, layout, task_id, control
            )
            if not changed:
                return ActionResult("error", f"{action}: no live task matched id {task_id}")
            return ActionResult("ok", f"Task {task_id} {done}.")

        return handler
