"""Task rows of one session: list them and pause, resume or cancel a series (by id or series id).

Shared by ``nanoclaw tasks`` and the agent's task actions. Every control acts on the whole
series (upstream reliability #13): it matches ``id = X OR series_id = X`` among live
(``pending``/``paused``) task rows. Cancel = ``completed`` with ``recurrence`` cleared.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from sqlalchemy import or_, select, update

from nanoclaw.contract.layout import SessionLayout
from nanoclaw.contract.sessiondb import parse_content
from nanoclaw.errors import ValidationError
from nanoclaw.sessions.schema import messages_in
from nanoclaw.sessions.store import SessionStore

TaskControl = Literal["pause", "resume", "cancel"]
LIVE = ("pending", "paused")


@dataclass(frozen=True)
class TaskRow:
    id: str
    series_id: str
    status: str
    process_after: str | None
    recurrence: str | None
    recurrence_tz: str | None
    catch_up: str | None
    tries: int
    prompt: str
    channel_type: str | None
    platform_id: str | None
    last_script: str | None = None  # what the last pre-check script run decided, and why

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def message_text(raw: str) -> str:
    """The text of a row's JSON content: a task's prompt, a chat's text."""
    content = parse_content(raw)
    return str(content.get("prompt") or content.get("text") or "")


def list_tasks(
    store: SessionStore, layout: SessionLayout, *, include_ended: bool = False
) -> list[TaskRow]:
    if not layout.inbound_db.exists():
        return []
    query = select(messages_in).where(messages_in.c.kind == "task")
    if not include_ended:
        query = query.where(messages_in.c.status.in_(LIVE))
    with store.engines.get(layout.inbound_db, readonly=True).connect() as conn:
        rows = conn.execute(query.order_by(messages_in.c.process_after, messages_in.c.seq)).all()
    return [
        TaskRow(
            id=r.id,
            series_id=r.series_id or r.id,
            status=r.status,
            process_after=r.process_after,
            recurrence=r.recurrence,
            recurrence_tz=r.recurrence_tz,
            catch_up=r.catch_up,
            tries=r.tries,
            prompt=message_text(r.content),
            channel_type=r.channel_type,
            platform_id=r.platform_id,
            last_script=_last_script(r.content),
        )
        for r in rows
    ]


def describe_script_run(run: dict[str, Any]) -> str:
    """One line for ``tasks list``: what the last pre-check script run decided, and why."""
    outcome = run.get("outcome")
    at = run.get("at", "")
    if outcome == "error":
        streak = int(run.get("failures_in_a_row") or 1)
        return f"failed at {at} ({streak} in a row): {run.get('reason') or 'unknown error'}"
    if outcome == "skipped":
        return f"skipped the turn at {at} (wakeAgent false)"
    return f"woke the agent at {at}"


def _last_script(raw: str) -> str | None:
    run = parse_content(raw).get("last_script")
    return describe_script_run(run) if isinstance(run, dict) else None


def control_task(store: SessionStore, layout: SessionLayout, key: str, action: TaskControl) -> int:
    """Apply ``action`` to the live rows of the series named by ``key``; returns rows changed."""
    if action not in ("pause", "resume", "cancel"):
        raise ValidationError(f"unknown task action {action!r}", field="action")
    match = (
        or_(messages_in.c.id == key, messages_in.c.series_id == key),
        messages_in.c.kind == "task",
    )
    if action == "pause":
        stmt = (
            update(messages_in)
            .where(*match, messages_in.c.status == "pending")
            .values(status="paused")
        )
    elif action == "resume":
        stmt = (
            update(messages_in)
            .where(*match, messages_in.c.status == "paused")
            .values(status="pending")
        )
    else:
        stmt = (
            update(messages_in)
            .where(*match, messages_in.c.status.in_(LIVE))
            .values(status="completed", recurrence=None)
        )
    with store.write(layout) as conn:
        return int(conn.execute(stmt).rowcount)
