"""The runner's poll loop (upstream §5): pending rows → claim → turn → replies + acks.

Wake on change (DESIGN §4): ``contract.watcher`` wakes the loop when ``inbound.db`` changes
(inotify where it works, else its change counter polled every ``watch_interval_s`` for a few
seconds after activity, backing off to 1 s). Between changes the runner sleeps until its
earliest due row or ``full_poll_interval_s``, the safety net, whichever comes first. After a
turn it polls again at once only when its poll saw triggering rows the batch did not take: rows
that arrived during the turn changed ``inbound.db``, so the watcher wakes for them. A batch
is driven only by a row with ``trigger=1`` (the accumulate gate); context rows wait, pending,
until one arrives.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from agent_runner.context import RunnerContext, UnknownDestinationError
from agent_runner.db import (
    InboundUnreadableError,
    OutboundMessage,
    PollView,
    Projection,
    SessionDB,
    UsageRecord,
)
from agent_runner.formatter import format_batch
from agent_runner.heartbeat import Heartbeat
from agent_runner.memory import SystemPrompt
from agent_runner.output import parse_output
from agent_runner.providers.base import Provider, TurnRequest, TurnResult
from agent_runner.rows import InboundRow, is_clear_command
from agent_runner.task_script import SCRIPT_TIMEOUT_S, run_task_script
from nanoclaw.contract.control import STOP_RUNNER_TYPE
from nanoclaw.contract.fault_log import FaultLog, fault_key
from nanoclaw.contract.runner_config import RunnerConfig
from nanoclaw.contract.timeutil import now_iso, parse_iso, utc_now
from nanoclaw.contract.watcher import ChangeWatcher

log = logging.getLogger("agent_runner")

CLEARED_TEXT = "Session cleared."
STOP_TYPE = STOP_RUNNER_TYPE  # a host request (restart): this runner stops between turns
SCRIPT_TIMEOUT_MS = int(SCRIPT_TIMEOUT_S * 1000)
# System rows that answer a blocking tool are consumed by that tool, not by a turn.
TOOL_RESPONSE_TYPES = frozenset({"question_response"})
# A turn's claim is written with its first write; a turn still running after this long writes
# it alone (the host's stuck detection and its "mid-turn" test read it).
CLAIM_WRITE_AFTER_S = 0.1


class StopFlag(asyncio.Event):
    """The loop's stop request; setting it also tells ``listeners`` (the wait for a change)."""

    def __init__(self) -> None:
        super().__init__()
        self.listeners: list[Callable[[], None]] = []

    def set(self) -> None:
        super().set()
        for listener in list(self.listeners):
            listener()


class UsageSink(Protocol):
    def record(self, result: TurnResult, batch: list[InboundRow]) -> None: ...


class PollLoop:
    def __init__(
        self,
        *,
        config: RunnerConfig,
        db: SessionDB,
        provider: Provider,
        session_dir: Path,
        group_dir: Path,
        global_dir: Path,
        heartbeat: Heartbeat,
    ) -> None:
        self.config = config
        self.db = db
        self.provider = provider
        self.session_dir = session_dir
        self.group_dir = group_dir
        self.global_dir = global_dir
        self.heartbeat = heartbeat
        self.system_prompt = SystemPrompt(
            assistant_name=config.assistant_name,
            timezone=config.timezone,
            global_dir=global_dir,
            group_dir=group_dir,
        )
        self.stopping = StopFlag()
        self._first_poll = True
        self._next_due_at: str | None = None  # from the latest poll's snapshot
        # The latest poll saw triggering rows its batch did not take: poll again at once.
        self._more_due = False
        self.started_at = now_iso()
        self._faults = FaultLog(log)

    async def run(self) -> None:
        self.started_at = now_iso()
        self.db.record_start(os.getpid())
        released = self.db.clear_stale_claims()
        if released:
            log.info("released %d stale claims for retry", released)
        parent = os.getppid()
        watcher = ChangeWatcher(fast_interval_s=self.config.watch_interval_s)
        watcher.watch("inbound", self.db.inbound_path)
        if not watcher.uses_inotify or watcher.polled_keys():
            log.info("inbound.db is polled for changes (no inotify watch)")
        self.stopping.listeners.append(watcher.interrupt)  # a stop ends the wait for a change
        try:
            while not self.stopping.is_set():
                if os.getppid() != parent:
                    # The process that started us (the host, or the sandbox wrapper) is gone: a
                    # runner nobody supervises must not keep polling. Claims are released on
                    # restart.
                    log.warning("parent process %d is gone; exiting", parent)
                    return
                self.heartbeat.touch()
                try:
                    handled = await self.poll_once()
                except InboundUnreadableError as exc:
                    # Transient (a hot journal the host's next write repairs): poll again later.
                    self._faults.report(
                        fault_key("poll", exc), logging.WARNING, "poll skipped: %s", exc
                    )
                    handled = False
                if handled:
                    watcher.note_activity()
                    if self._more_due:
                        continue
                # Rows that arrived during a turn changed inbound.db: the watcher wakes at once.
                await self._sleep_until_change(watcher)
        finally:
            self.stopping.listeners.remove(watcher.interrupt)
            watcher.close()

    async def _sleep_until_change(self, watcher: ChangeWatcher) -> None:
        """Until inbound.db changes, the earliest due row is due, the safety net, or a stop."""
        timeout_s = self.config.full_poll_interval_s
        due_at = self._next_due_at  # read in the same snapshot as the poll that found nothing
        if due_at is not None:
            timeout_s = min(timeout_s, max(0.0, (parse_iso(due_at) - utc_now()).total_seconds()))
        if not self.stopping.is_set():
            await watcher.wait(timeout_s)  # a stop set from now on interrupts it

    async def poll_once(self) -> bool:
        """Run at most one batch; return whether one ran."""
        view = self.db.poll(now=now_iso(), include_on_wake=self._first_poll, projection=True)
        rows, self._next_due_at = view.rows, view.next_due_at
        self._first_poll = False
        self._more_due = False
        controls = [r for r in rows if r.kind == "system" and r.content.get("type") == STOP_TYPE]
        rows = [
            r
            for r in rows
            if not (
                r.kind == "system"
                and (r.content.get("type") in TOOL_RESPONSE_TYPES or r in controls)
            )
        ]
        if controls and self._stop_requested(controls):
            return False
        if not rows or not any(r.trigger for r in rows):
            return False
        batch = rows[-self.config.max_messages_per_prompt :]
        isolated = next((r for r in batch if is_isolated_task(r)), None)
        if isolated is not None:
            # An isolated task runs alone, in a fresh context; the chat's rows wait their turn.
            batch = [isolated]
        taken = {r.id for r in batch}
        self._more_due = any(r.trigger for r in rows if r.id not in taken)
        self.db.claim_later([r.id for r in batch])
        self.heartbeat.touch()
        claim_timer = asyncio.get_running_loop().call_later(CLAIM_WRITE_AFTER_S, self._write_claim)
        try:
            return await self._turn(batch, view, isolated)
        finally:
            claim_timer.cancel()
            self.db.drop_unwritten_claim()

    def _write_claim(self) -> None:
        try:
            self.db.write_claim()
        except Exception as exc:  # the turn's own next write meets the same fault and raises
            self._faults.report(
                fault_key("claim", exc), logging.WARNING, "claim not written: %s", exc
            )

    async def _turn(
        self, batch: list[InboundRow], view: PollView, isolated: InboundRow | None
    ) -> bool:
        """Run one claimed batch: /clear, task scripts, then the model's turn and its write."""
        projection = view.projection
        clears = [r for r in batch if r.trigger and is_clear_command(r)]
        if clears:
            # /clear first, then the rest of the batch is answered in the fresh conversation.
            ctx = self._context(batch, projection)
            await self.provider.reset(ctx)
            self.db.finish(
                [r.id for r in clears],
                [ctx.address(None, {"text": CLEARED_TEXT})],
                inbound_seq=view.max_seq,
            )
            batch = [r for r in batch if r not in clears]
        if any(_script(r) for r in batch):
            projection = None  # scripts may run for minutes: the turn reads the projection afresh
            batch = await self._run_scripts(batch)
        if not any(r.trigger for r in batch):
            self.db.release([r.id for r in batch])  # context rows wait for the next trigger
            return True
        ids = [r.id for r in batch]
        ctx = self._context(batch, projection)
        destinations = list(ctx.destinations.values())
        request = TurnRequest(
            prompt=format_batch(
                batch,
                destinations,
                self.config.timezone,
                session_dir=self.session_dir,
                reply_seqs=self._reply_seqs(batch),
            ),
            system_prompt=self.system_prompt.compose(destinations),
            batch=tuple(batch),
            destinations=tuple(destinations),
            fresh_context=isolated is not None,
        )
        try:
            result = await self.provider.run_turn(request, ctx)
        except Exception as exc:  # a provider bug must not kill the loop; the user is told
            log.exception("turn failed")
            result = TurnResult(text=f"Error: {exc}", error=str(exc))
        self.db.finish(
            ids,
            self._replies(ctx, result),
            status="failed" if result.error else "completed",
            usage=_usage_record(result),
            inbound_seq=view.max_seq,
        )
        return True

    def _context(self, batch: list[InboundRow], projection: Projection | None) -> RunnerContext:
        """The turn's context; ``projection`` is the poll's read of it, else it is read now."""
        destinations, routing = projection if projection is not None else self.db.projection()
        return RunnerContext(
            db=self.db,
            heartbeat=self.heartbeat,
            batch=batch,
            destinations=destinations,
            session_routing=routing,
            group_dir=self.group_dir,
            session_dir=self.session_dir,
        )

    def _stop_requested(self, controls: list[InboundRow]) -> bool:
        """A restart asks this runner to stop between turns; a request older runners left is spent.

        A request written before this runner started was meant for its predecessor (which
        ended anyway): it is acked and ignored, so a fresh runner never stops for it.
        """
        mine = [r for r in controls if r.timestamp >= self.started_at]
        self.db.finish([r.id for r in controls], [])
        if mine:
            log.info("restart requested: stopping after the turn")
            self.stopping.set()
            return True
        return False

    async def _run_scripts(self, batch: list[InboundRow]) -> list[InboundRow]:
        """Run the batch's task scripts; a task whose script says no (or fails) is done, unturned."""
        kept: list[InboundRow] = []
        skipped: list[str] = []
        reports: list[OutboundMessage] = []
        for row in batch:
            script = _script(row)
            if script is None:
                kept.append(row)
                continue
            self.db.set_current_tool("task_script", declared_timeout_ms=SCRIPT_TIMEOUT_MS)
            try:
                outcome = await run_task_script(
                    script, cwd=self.group_dir, touch=self.heartbeat.touch
                )
            finally:
                self.db.set_current_tool(None)
            if outcome.error:
                log.warning("task %s: script failed: %s", row.id, outcome.error)
            # Imported here: building the payload models costs about 0.2 s of the runner's
            # start-up, and most turns never write one.
            from nanoclaw.contract.actions import (
                ActionName,
                ScriptOutcome,
                TaskScriptPayload,
                request_content,
            )

            reports.append(
                OutboundMessage(
                    kind="system",
                    content=request_content(
                        ActionName.TASK_SCRIPT,
                        TaskScriptPayload(
                            task_id=row.id,
                            outcome=ScriptOutcome(outcome.outcome),
                            reason=outcome.error,
                        ),
                    ),
                    in_reply_to=row.id,
                )
            )
            if outcome.wake and outcome.error is None:
                data = outcome.data
                shown = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
                kept.append(
                    dataclasses.replace(row, content={**row.content, "script_output": shown})
                )
            else:
                skipped.append(row.id)
        if reports:
            # Skipped occurrences are done (the host schedules the next); the host records why.
            self.db.finish(skipped, reports)
        return kept

    def _reply_seqs(self, batch: list[InboundRow]) -> dict[str, int]:
        """Row id → the seq of the message it replies to, for replies the agent can see."""
        found: dict[str, int] = {}
        for row in batch:
            reply = row.content.get("reply_to")
            if row.kind != "chat" or not isinstance(reply, dict) or not reply.get("id"):
                continue
            seq = self.db.seq_of_platform_message(
                row.channel_type, row.platform_id, str(reply["id"])
            )
            if seq is not None:
                found[row.id] = seq
        return found

    def _replies(self, ctx: RunnerContext, result: TurnResult) -> list[OutboundMessage]:
        messages: list[OutboundMessage] = []
        for reply in parse_output(result.text):
            content: dict[str, str] = {"text": reply.text}
            if result.error:  # a structured mark, so channels and setup never parse the text
                content["error"] = result.error
            try:
                messages.append(ctx.address(reply.to, content))
            except UnknownDestinationError as exc:
                if reply.to is None and all(_from_host(r) for r in ctx.batch):
                    # An answer to host notices only, with no chat to go to: telling the agent
                    # again would wake it again (a loop of paid turns). Logged, not sent.
                    log.info("reply to a host notice has no destination; not sent")
                    continue
                # Never silently dropped: the host turns this into a notice for the agent.
                log.warning("%s", exc)
                from nanoclaw.contract.actions import (  # see _run_scripts: a costly import
                    ActionName,
                    NotifyAgentPayload,
                    request_content,
                )

                messages.append(
                    OutboundMessage(
                        kind="system",
                        content=request_content(
                            ActionName.NOTIFY_AGENT,
                            NotifyAgentPayload(
                                text=f"Your message was not sent: {exc}.",
                                undelivered_text=reply.text,
                            ),
                        ),
                        in_reply_to=ctx.in_reply_to,
                    )
                )
        return messages


def _script(row: InboundRow) -> str | None:
    """The task's script (run before its turn), if it has one."""
    script = row.content.get("script") if row.kind == "task" else None
    return script if isinstance(script, str) and script.strip() else None


def is_isolated_task(row: InboundRow) -> bool:
    """A task whose content asks for a fresh context (v1's ``context_mode=isolated``)."""
    return row.kind == "task" and row.content.get("context_mode") == "isolated"


def _from_host(row: InboundRow) -> bool:
    return row.kind == "system" or (
        row.channel_type == "agent" and row.content.get("sender") == "system"
    )


def _usage_record(result: TurnResult) -> UsageRecord | None:
    usage = result.usage
    if usage is None:
        return None
    return UsageRecord(
        model=usage.model,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cost_usd=usage.cost_usd,
    )
