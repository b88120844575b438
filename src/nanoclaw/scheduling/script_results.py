"""Host side of task pre-check scripts: record each run's outcome and report repeated failures."""

# The runner runs a task's script before the model (``agent_runner/task_script.py``) and
# reports the outcome as a ``task_script`` system row. The host writes it into the
# occurrence's content (``script_run``, the occurrence's own record) and into the series'
# live rows (``last_script``, what ``nanoclaw tasks list`` shows). Failures in a row are
# counted over the series' ended occurrences, newest first; at
# ``SCRIPT_FAILURES_BEFORE_NOTICE`` the task's chat is told once. The result never goes
# back to the agent: an answer row would wake it, the very turn the script just skipped.

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from sqlalchemy import or_, select, update

from nanoclaw.contract.actions import ActionName, ActionStatus, ScriptOutcome, TaskScriptPayload
from nanoclaw.contract.layout import SessionLayout
from nanoclaw.contract.sessiondb import InboundStatus, parse_content
from nanoclaw.contract.timeutil import now_iso
from nanoclaw.db.models import SessionRow
from nanoclaw.delivery.actions import ActionResult, SystemActions
from nanoclaw.delivery.notices import Notifier
from nanoclaw.executors import Executors
from nanoclaw.sessions.outbound_reader import OutboundRow
from nanoclaw.sessions.schema import messages_in
from nanoclaw.sessions.service import SessionService

log = logging.getLogger("nanoclaw.scheduling.scripts")

SCRIPT_FAILURES_BEFORE_NOTICE = 3
MAX_REASON_CHARS = 500
ENDED = (InboundStatus.COMPLETED, InboundStatus.FAILED)
LIVE = (InboundStatus.PENDING, InboundStatus.PAUSED)


@dataclass(frozen=True)
class ScriptReport:
    series_id: str
    failures_in_a_row: int
    channel_type: str | None
    platform_id: str | None
    thread_id: str | None
    prompt: str


def record_script_run(
    sessions: SessionService, layout: SessionLayout, task_id: str, outcome: str, reason: str | None
) -> ScriptReport | None:
    """Write the run into the occurrence and its series; None when no such task exists."""
    with sessions.store.write(layout) as conn:
        row = conn.execute(
            select(messages_in).where(messages_in.c.id == task_id, messages_in.c.kind == "task")
        ).first()
        if row is None:
            return None
        series = row.series_id or row.id
        history = conn.execute(
            select(messages_in.c.id, messages_in.c.content)
            .where(
                messages_in.c.series_id == series,
                messages_in.c.kind == "task",
                messages_in.c.status.in_(ENDED),
                messages_in.c.id != task_id,
            )
            .order_by(messages_in.c.seq.desc())
        ).all()
        streak = 1 if outcome == ScriptOutcome.ERROR else 0
        if outcome == ScriptOutcome.ERROR:
            for other_id, raw in history:
                previous = parse_content(raw).get("script_run")
                # Only an occurrence's own record counts (a recurrence clone copies content).
                if not isinstance(previous, dict) or previous.get("occurrence") != other_id:
                    continue
                if previous.get("outcome") != ScriptOutcome.ERROR:
                    break
                streak += 1
        run = {
            "occurrence": task_id,
            "outcome": outcome,
            "reason": (reason or None) and str(reason)[:MAX_REASON_CHARS],
            "at": now_iso(),
            "failures_in_a_row": streak,
        }
        content = parse_content(row.content)
        content["script_run"] = run
        content["last_script"] = run
        conn.execute(
            update(messages_in)
            .where(messages_in.c.id == task_id)
            .values(content=json.dumps(content))
        )
        live = conn.execute(
            select(messages_in.c.id, messages_in.c.content).where(
                or_(messages_in.c.series_id == series, messages_in.c.id == series),
                messages_in.c.kind == "task",
                messages_in.c.status.in_(LIVE),
                messages_in.c.id != task_id,
            )
        ).all()
        for live_id, raw in live:
            live_content = parse_content(raw)
            live_content["last_script"] = run
            conn.execute(
                update(messages_in)
                .where(messages_in.c.id == live_id)
                .values(content=json.dumps(live_content))
            )
    return ScriptReport(
        series_id=series,
        failures_in_a_row=streak,
        channel_type=row.channel_type,
        platform_id=row.platform_id,
        thread_id=row.thread_id,
        prompt=str(content.get("prompt") or ""),
    )


class ScriptResults:
    """The ``task_script`` action: not gated (it only records what the agent's own task did)."""

    def __init__(
        self, *, executors: Executors, sessions: SessionService, notices: Notifier
    ) -> None:
        self.executors = executors
        self.sessions = sessions
        self.notices = notices

    def install(self, actions: SystemActions) -> None:
        # A bad report is refused unanswered, like every outcome of this action.
        actions.register_payload(
            ActionName.TASK_SCRIPT, TaskScriptPayload, self.handle, answer_refusal=False
        )

    async def handle(
        self, session: SessionRow, row: OutboundRow, report_row: TaskScriptPayload
    ) -> ActionResult:
        task_id, outcome, reason = report_row.task_id, report_row.outcome, report_row.reason
        layout = await self.executors.central.run(self.sessions.layout, session)
        report = await self.executors.central.run(
            record_script_run,
            self.sessions,
            layout,
            task_id,
            outcome.value,
            reason or None,
        )
        if report is None:
            return ActionResult(
                ActionStatus.ERROR,
                f"{ActionName.TASK_SCRIPT}: no task {task_id}",
                reply_to_agent=False,
            )
        if outcome is ScriptOutcome.ERROR:
            log.warning(
                "task %s of %s: script failed (%d in a row): %s",
                task_id,
                session.id,
                report.failures_in_a_row,
                reason,
            )
        if (
            report.failures_in_a_row == SCRIPT_FAILURES_BEFORE_NOTICE
            and report.channel_type
            and report.platform_id
            and report.channel_type != "agent"
        ):
            preview = report.prompt[:80]
            await self.notices.notify(
                report.channel_type,
                report.platform_id,
                report.thread_id,
                f"The scheduled task {report.series_id} (“{preview}”) did not run: its check "
                f"script failed {report.failures_in_a_row} times in a row. Last error: {reason}",
            )
        return ActionResult(ActionStatus.OK, f"recorded ({outcome.value})", reply_to_agent=False)
