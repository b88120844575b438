"""The sweep (DESIGN §1 step 5, upstream §7): every ``sweep_interval_s``, every active session.

Per session, in this order, each session isolated (a locked or damaged DB is logged,
counted in the report and skipped; the others go on):
1. roll back hot journals a kill left behind (read-write open; only with no runner alive);
2. sync acks (``completed``/``failed`` acks complete their ``messages_in`` rows);
3. re-arm recurring series whose occurrence ended; under catch-up ``skip`` move occurrences
   missed while the host was down to their next time (no runner alive);
4. wake due work, **before** any reset;
5. a live runner judged stuck (``decide_stuck_action``) is killed; its claimed rows are
   then reset by the exit handler: one try counted, retried after 5 s·2^(tries-1), and at
   ``max_tries`` the row ends ``failed`` and both the user and the agent are told;
6. ``processing`` claims with no runner alive are released (a host restart is not the
   message's fault: no try is counted);
7. runners of this install that this host did not start are stopped (at most one runner
   per session, even across a host crash);
8. the due-work timer learns the session's next due time.

Only sessions with something to do are visited: one with no live runner whose ``inbound.db``
and ``outbound.db`` change counters are what they were after a visit that left it settled (no
claim, no due work) is skipped; its future due work is the timer's, which holds every
session's next due time in memory. That state is also saved after each sweep
(:mod:`nanoclaw.sweep.settled`), so the recovery pass at start-up skips a session whose DBs are
unchanged since a settled visit, have no ``-journal`` and have no due time passed (its next due
time goes back to the timer); every other session is visited. Every ``FULL_SWEEP_EVERY``
sweeps all are visited again as a safety net.

Start-up splits the recovery pass. Before the socket opens (:meth:`Sweep.recover`): hot
journals are rolled back (nothing may write before that) and the sessions needing a visit are
noted; a few ``stat`` calls each. After it opens (:meth:`Sweep.finish_recovery`, first thing in
the sweep's task) each noted session gets its visit (steps 1–8). Meanwhile a wake of a noted
session (a message arriving for it) makes that session's visit first, through the supervisor's
before-wake hook (:meth:`Sweep.ensure_recovered`), so no runner starts on a missed ``skip``
occurrence or a stale claim, and no session is visited twice.

Whether a runner is alive is never kept here: every step asks ``Supervisor.liveness``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from nanoclaw.cancel import cancel_and_wait
from nanoclaw.contract.confined import ConfinedDir
from nanoclaw.contract.dbwatch import change_signature
from nanoclaw.contract.layout import SessionLayout
from nanoclaw.contract.timeutil import to_iso, utc_now
from nanoclaw.db.models import SessionRow
from nanoclaw.db.repository import Repository
from nanoclaw.delivery.loop import NOTICE_PREFIX, DeliveryLoop
from nanoclaw.delivery.notices import Notifier
from nanoclaw.errors import SandboxFileError
from nanoclaw.executors import Executors
from nanoclaw.runtime.base import RunnerExit
from nanoclaw.runtime.liveness import RunnerLiveness
from nanoclaw.runtime.supervisor import Supervisor
from nanoclaw.scheduling.recurrence import catch_up_overdue, rearm_ended
from nanoclaw.scheduling.series import SeriesIndex, has_series
from nanoclaw.sessions.outbound_reader import SessionReader
from nanoclaw.sessions.service import SessionService
from nanoclaw.settings import Settings
from nanoclaw.sweep import ops
from nanoclaw.sweep.settled import Settled, SettledStore, Signature
from nanoclaw.sweep.stuck import Claim, decide_stuck_action
from nanoclaw.sweep.timer import DueTimer
from nanoclaw.tasks import Spawn

if TYPE_CHECKING:
    from nanoclaw.sessions.quarantine import SessionQuarantine

log = logging.getLogger("nanoclaw.sweep")

PREVIEW_CHARS = 120
FULL_SWEEP_EVERY = 60  # with the default 60 s interval: every session visited once an hour
# The session whose recovery visit the current task is making (its own wakes pass the gate).
_VISITING: ContextVar[str | None] = ContextVar("nanoclaw_sweep_visiting", default=None)
# Nudge a live runner this long after the due time, so its own clock also reads "due".
NUDGE_LATENESS_S = 0.005


@dataclass
class SweepReport:
    swept: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # session id -> error
    woken: list[str] = field(default_factory=list)
    unchanged: int = 0  # settled sessions skipped: nothing changed since their last visit
    killed: dict[str, str] = field(default_factory=dict)  # session id -> reason
    released: int = 0
    rearmed: int = 0
    skipped_occurrences: int = 0
    journals: int = 0
    live: list[str] = field(default_factory=list)  # visited with a RUNNING runner (stuck-checked)


class Sweep:
    def __init__(
        self,
        *,
        executors: Executors,
        settings: Settings,
        repo: Repository,
        sessions: SessionService,
        reader: SessionReader,
        supervisor: Supervisor,
        delivery: DeliveryLoop,
        notices: Notifier,
        spawn: Spawn,
        clock: Callable[[], datetime] = utc_now,
        quarantine: SessionQuarantine | None = None,
        settled_store: SettledStore | None = None,
    ) -> None:
        self.executors = executors
        self.settings = settings
        self.repo = repo
        self.sessions = sessions
        self.store = sessions.store
        self.reader = reader
        self.supervisor = supervisor
        self.delivery = delivery
        self.notices = notices  # durable: the user's failure notice is retried until sent
        self.clock = clock
        self.quarantine = quarantine
        self.timer = DueTimer(
            executors=executors,
            on_due=self._on_due,
            next_due=lambda layout, after: ops.next_due(self.store, layout, after=after),
            spawn=spawn,
            clock=clock,
        )
        self.store.add_insert_listener(self.timer.inserted)
        self.series = SeriesIndex()  # sessions with no recurring row: no re-arm look per turn
        self.store.add_series_listener(self.series.written)
        self._closing = False
        # session id → (inbound, outbound) change counters after a visit that left it settled
        self._settled: dict[str, tuple[Signature, Signature]] = {}
        self._settled_due: dict[str, str | None] = {}  # its next due time after that visit
        self._settled_delivered: dict[str, bool] = {}  # every reply had its delivery record
        self._restored: dict[str, str | None] = {}  # settled before start-up: next due time
        self.settled_store = settled_store  # the settled state kept across restarts
        self._saved: dict[str, Settled] = {}
        self._sweeps = 0
        # Start-up recovery (see recover): sessions whose visit is still due, visits underway.
        self._unrecovered: dict[str, SessionRow] = {}
        self._recovering: dict[str, asyncio.Future[None]] = {}
        self._recovery_report: SweepReport | None = None
        self._recovery_ids: set[str] = set()
        self.recovered = asyncio.Event()  # set once every recovery visit is made
        self._nudges: set[asyncio.Task[None]] = set()
        self.last_report: SweepReport | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    async def recover(self) -> SweepReport:
        """At start-up, before channels accept messages: what must happen before anything
        writes. Hot journals a kill left beside either DB are rolled back (no runner is alive
        yet), and the sessions not recorded settled and unchanged (see the module docstring)
        are noted for their recovery visit, which :meth:`finish_recovery` makes after the
        socket opens. Until then, :meth:`ensure_recovered` (called before every wake) visits a
        session first, so no runner starts on stale claims or missed ``skip`` occurrences.

        Each check is a few ``stat`` calls, made on the loop: nothing else is served yet; a
        hot journal is rolled back on the session's executor lane.
        """
        report = SweepReport()
        if self.settled_store is not None:
            saved = await self.executors.blocking.run(self.settled_store.load)
            self._saved = dict(saved)
            for session_id, entry in saved.items():
                self._settled[session_id] = entry.signatures
                self._settled_due[session_id] = entry.next_due
                self._settled_delivered[session_id] = entry.delivered
                self._restored[session_id] = entry.next_due
        # The recovery visits below stand for the first full sweep.
        self._sweeps = 1
        try:
            listed = await self.executors.central.run(self._sessions_with_layouts)
        except Exception:
            log.exception("recovery cannot list sessions")
            listed = []
        sessions = [session for session, _ in listed]
        try:
            for session, layout in listed:
                if self.quarantine is not None and self.quarantine.is_quarantined(session.id):
                    continue
                await self._prepare_recovery(session, layout, report)
        finally:
            self._restored.clear()
        self._recovery_ids = {s.id for s in sessions}
        self._recovery_report = report
        self.last_report = report
        return report

    def _sessions_with_layouts(self) -> list[tuple[SessionRow, SessionLayout]]:
        """Blocking (central DB): every session with its folder's layout."""
        return [(session, self.sessions.layout(session)) for session in self.repo.sessions()]

    async def _prepare_recovery(
        self, session: SessionRow, layout: SessionLayout, report: SweepReport
    ) -> None:
        try:
            if self._still_settled(session, self._signatures(session)):
                report.unchanged += 1
                return
            self._forget_settled(session.id)
            self._unrecovered[session.id] = session
            if not self.supervisor.is_alive(session.id) and await self.executors.sessions.run(
                session.id, ops.recover_journals, self.store, layout
            ):
                report.journals += 1
                log.warning("rolled back a hot journal in session %s", session.id)
        except SandboxFileError as exc:
            self._unrecovered.pop(session.id, None)
            report.skipped[session.id] = f"quarantined: {exc}"
            if self.quarantine is None:
                log.error("recovery skipped session %s: %s", session.id, exc)
            else:
                await self.quarantine.quarantine(session.id, exc)
        except Exception as exc:  # its recovery visit tries again
            log.error("recovery of session %s: %s", session.id, exc)

    async def finish_recovery(self) -> SweepReport:
        """After the socket opens: the recovery visit of every session noted by
        :meth:`recover` and not visited yet by a wake; then the settled record is saved."""
        report = self._recovery_report or SweepReport()
        for session in list(self._unrecovered.values()):
            if session.id in self._unrecovered:
                await self._recover_one(session, report)
        for pending in list(self._recovering.values()):
            await asyncio.shield(pending)
        self.last_report = report
        await self._save_settled(self._recovery_ids)
        self.recovered.set()
        return report

    async def ensure_recovered(self, session_id: str) -> None:
        """Before a runner starts (the supervisor's wake hook): a session whose recovery visit
        is still due is visited now, or its visit in progress awaited. Never raises."""
        if _VISITING.get() == session_id:
            return  # the visit itself wakes due work
        pending = self._recovering.get(session_id)
        if pending is not None:
            await asyncio.shield(pending)
            return
        session = self._unrecovered.get(session_id)
        if session is not None:
            await self._recover_one(session, self._recovery_report or SweepReport())

    async def _recover_one(self, session: SessionRow, report: SweepReport) -> None:
        self._unrecovered.pop(session.id, None)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._recovering[session.id] = done
        token = _VISITING.set(session.id)
        finished = False
        try:
            await self._visit(session, report, full=True)
            finished = True
        finally:
            _VISITING.reset(token)
            del self._recovering[session.id]
            if not finished:  # cancelled with its waker: the visit is still owed
                self._unrecovered.setdefault(session.id, session)
            done.set_result(None)

    async def run(self) -> None:
        """The periodic sweep and the due-work timer, until cancelled."""
        timer = asyncio.create_task(self.timer.run(), name="due-timer")
        try:
            await self.finish_recovery()
            while not self._closing:
                await asyncio.sleep(self.settings.sweep_interval_s)
                await self.sweep_once()
        finally:
            for nudge in list(self._nudges):
                nudge.cancel()
            await cancel_and_wait(timer)

    def close(self) -> None:
        """The host is stopping: runner exits from now on are not the messages' fault."""
        self._closing = True

    # -- one pass ---------------------------------------------------------------------------------
    async def sweep_once(self) -> SweepReport:
        report = SweepReport()
        started = time.monotonic()
        # Taken before the listing: a session the host learns of after it is not taken for
        # gone (the host learns of a session only once its row is committed).
        known = self._known()
        try:
            sessions = await self.executors.central.run(self.repo.sessions)
        except Exception:
            log.exception("sweep cannot list sessions")
            return report
        full = self._sweeps % FULL_SWEEP_EVERY == 0
        self._sweeps += 1
        listed = {s.id for s in sessions}
        # Deleted (by a command or a cascade) yet kept for; one still draining stays known,
        # so the next sweep tries it again.
        for gone in known - listed:
            self._forget(gone)
        for session in sessions:
            if self.quarantine is not None and self.quarantine.is_quarantined(session.id):
                continue  # its files are never opened again
            pending = self._recovering.get(session.id)
            if pending is not None:  # a wake is making its recovery visit right now
                await asyncio.shield(pending)
            elif session.id in self._unrecovered:
                await self._recover_one(session, report)
            else:
                await self._visit(session, report, full=full)
        self.last_report = report
        await self._save_settled(listed)
        log.debug("sweep of %d session(s) took %.3f s", report.swept, time.monotonic() - started)
        return report

    async def _visit(self, session: SessionRow, report: SweepReport, *, full: bool) -> None:
        """One session's visit, isolated: a locked or damaged DB is logged and counted."""
        try:
            signatures = self._signatures(session)
            if not full and self._still_settled(session, signatures):
                report.unchanged += 1
                return
            self._forget_settled(session.id)
            if await self._sweep_session(session, report) and signatures is not None:
                self._settled[session.id] = signatures
                due = self.timer.due_at(session.id)
                self._settled_due[session.id] = None if due is None else to_iso(due)
                self._settled_delivered[session.id] = await self._all_delivered(session)
            report.swept += 1
        except SandboxFileError as exc:
            report.skipped[session.id] = f"quarantined: {exc}"
            if self.quarantine is None:
                log.error("sweep skipped session %s: %s", session.id, exc)
            else:
                await self.quarantine.quarantine(session.id, exc)
        except Exception as exc:
            # One locked or damaged session DB never stalls the others.
            report.skipped[session.id] = f"{type(exc).__name__}: {exc}"
            log.error("sweep skipped session %s: %s", session.id, exc)

    async def _all_delivered(self, session: SessionRow) -> bool:
        """Whether every reply of a settled session has its delivery record (False if unsure)."""
        try:
            layout = await self.executors.central.run(self.sessions.layout, session)
            return await self.executors.sessions.run(session.id, self.reader.all_delivered, layout)
        except Exception:
            return False

    def settled_and_delivered(self, session_id: str) -> bool:
        """After :meth:`recover`: the session was found settled and unchanged since a visit
        after which every reply had its delivery record, so it has nothing to drain."""
        return session_id in self._settled and self._settled_delivered.get(session_id, False)

    def _still_settled(
        self, session: SessionRow, signatures: tuple[Signature, Signature] | None
    ) -> bool:
        """Settled at a visit, both DBs unchanged since, no runner, nothing newly due."""
        return (
            signatures is not None
            and self._settled.get(session.id) == signatures
            and not self.supervisor.is_alive(session.id)
            and self._restored_still_settled(session, signatures[0])
        )

    def _known(self) -> set[str]:
        """Every session the host keeps anything for: this sweep, its timer, delivery."""
        return (
            self._settled.keys()
            | self._restored.keys()
            | self._unrecovered.keys()
            | self.timer.tracked()
            | self.delivery.known()
        )

    def _forget(self, session_id: str) -> None:
        """A session gone from the central DB: the host keeps nothing of it. One whose delivery
        is still draining or watched is kept whole, so it stays known for the next sweep."""
        layout = self.delivery.layout(session_id) or self.timer.layout(session_id)
        if not self.delivery.forget(session_id):
            return
        self._forget_settled(session_id)
        self._restored.pop(session_id, None)
        self._unrecovered.pop(session_id, None)
        self.timer.forget(session_id)
        self.series.forget(session_id)
        if layout is not None:
            self.store.forget(layout)

    def _forget_settled(self, session_id: str) -> None:
        self._settled.pop(session_id, None)
        self._settled_due.pop(session_id, None)
        self._settled_delivered.pop(session_id, None)

    def _restored_still_settled(self, session: SessionRow, inbound: Signature) -> bool:
        """A session settled before start-up is skipped only with no ``-journal`` beside either
        DB (a kill mid-write) and no due time passed; its next due time goes to the timer."""
        if session.id not in self._restored:
            return True
        next_due = self._restored[session.id]
        if next_due is not None and next_due <= to_iso(self.clock()):
            return False
        layout = self.sessions.layout(session)
        for db in (layout.inbound_db, layout.outbound_db):
            if db.with_name(db.name + "-journal").exists():
                return False
        self.timer.restore(session.id, layout, next_due, inbound=inbound)
        return True

    async def _save_settled(self, live: set[str]) -> None:
        if self.settled_store is None:
            return
        current = {
            session_id: Settled(
                inbound=signatures[0],
                outbound=signatures[1],
                next_due=self._settled_due.get(session_id),
                delivered=self._settled_delivered.get(session_id, False),
            )
            for session_id, signatures in self._settled.items()
            if session_id in live
        }
        if current == self._saved:
            return
        try:
            await self.executors.blocking.run(self.settled_store.save, current)
        except OSError as exc:  # a cache: the next start-up visits more sessions, that is all
            log.warning("cannot save the sweep's settled record: %s", exc)
            return
        self._saved = current

    def _signatures(self, session: SessionRow) -> tuple[Signature, Signature] | None:
        layout = self.sessions.layout(session)
        inbound = change_signature(layout.inbound_db)
        if inbound is None:
            return None
        return inbound, change_signature(layout.outbound_db)

    async def _sweep_session(self, session: SessionRow, report: SweepReport) -> bool:
        """Visit one session; return whether it is settled (nothing due, claimed or alive)."""
        layout = await self.executors.central.run(self.sessions.layout, session)
        if not layout.inbound_db.exists():
            return False
        self.timer.track(session.id, layout)
        now = self.clock()
        alive = self.supervisor.is_alive(session.id)
        if not alive and await self.executors.sessions.run(
            session.id, ops.recover_journals, self.store, layout
        ):
            report.journals += 1
            log.warning("rolled back a hot journal in session %s", session.id)
        acks = await self.executors.sessions.run(session.id, self.reader.acks, layout)
        if acks:
            await self.executors.sessions.run(session.id, self.store.sync_acks, layout, acks)
        rearmed = await self.executors.sessions.run(
            session.id,
            rearm_ended,
            self.store,
            layout,
            now=now,
            default_tz=self.settings.timezone,
            grace_s=self.settings.task_catch_up_grace_s,
        )
        report.rearmed += sum(1 for r in rearmed if r.new_id)
        claims = await self.executors.sessions.run(session.id, ops.read_claims, self.store, layout)
        processing = [mid for mid, c in claims.items() if c.status == "processing"]
        if not alive:
            moved = await self.executors.sessions.run(
                session.id,
                catch_up_overdue,
                self.store,
                layout,
                now=now,
                default_tz=self.settings.timezone,
                grace_s=self.settings.task_catch_up_grace_s,
                claimed=set(processing),
            )
            report.skipped_occurrences += len(moved)
            # Wake due work before any reset.
            if await self.executors.sessions.run(
                session.id, self.reader.has_due_trigger, layout, now=to_iso(now)
            ):
                report.woken.append(session.id)
                await self.supervisor.wake(session.id)
                alive = self.supervisor.is_alive(session.id)
        if self.supervisor.liveness(session.id) is RunnerLiveness.RUNNING:
            report.live.append(session.id)
            # Claims read before this visit woke the runner are its predecessor's (cleared as
            # it started): judged against a runner that has not beaten yet, they would kill it.
            if session.id not in report.woken:
                await self._check_stuck(session, layout, claims, report)
        elif not alive and processing:
            report.released += await self.executors.sessions.run(
                session.id, ops.release_claims, self.store, layout
            )
        await self.timer.refresh(session.id)
        return not alive and not processing and session.id not in report.woken

    async def _check_stuck(
        self,
        session: SessionRow,
        layout: SessionLayout,
        claims: dict[str, Claim],
        report: SweepReport,
    ) -> None:
        mtime = await self.executors.sessions.run(
            session.id, heartbeat_mtime, layout
        )  # off the loop (invariant 6)
        state = await self.executors.sessions.run(session.id, self.reader.runner_state, layout)
        # A turn whose claim is not written yet (its loop blocked from the start, say) is
        # judged by its turn file's time, as a claim taken then.
        held = await self.executors.sessions.run(
            session.id, ops.with_unwritten_claims, layout, claims
        )
        decision = decide_stuck_action(
            self.clock(),
            mtime,
            state,
            held,
            claim_tolerance_s=self.settings.stuck_claim_tolerance_s,
            ceiling_s=self.settings.stuck_heartbeat_ceiling_s,
        )
        if decision.action != "kill":
            return
        log.warning("runner of %s is stuck (%s); killing it", session.id, decision.reason)
        report.killed[session.id] = decision.reason
        # The exit handler (``on_runner_exit``) resets the claimed rows once it is gone.
        await self.supervisor.stop(session.id)

    # -- runner exits ------------------------------------------------------------------------------
    async def on_runner_exit(self, session_id: str, result: RunnerExit) -> None:
        """A runner is gone: rows it held (claimed, or named by a turn whose claim was not
        written yet) count one try and retry later (or fail)."""
        if self._closing:
            return
        if self.quarantine is not None and self.quarantine.is_quarantined(session_id):
            return  # its files are never opened again; its messages were failed already
        try:
            session, layout = await self.executors.central.run(
                self.sessions.row_and_layout, session_id
            )
            claims = await self.executors.sessions.run(
                session_id, ops.read_claims, self.store, layout
            )
            processing = await self.executors.sessions.run(
                session_id, ops.held_by_exited_runner, layout, claims
            )
            if processing and not self.supervisor.is_alive(session_id):
                reset = await self.executors.sessions.run(
                    session_id,
                    ops.reset_stuck_rows,
                    self.store,
                    layout,
                    processing,
                    now=self.clock(),
                    backoff_base_s=self.settings.retry_backoff_base_s,
                    max_tries=self.settings.max_tries,
                )
                for mid, after in reset.retried.items():
                    log.warning(
                        "message %s of %s will be retried at %s (runner exit %s)",
                        mid,
                        session_id,
                        after,
                        result.exit_code,
                    )
                for row in reset.failed:
                    await self._tell_failure(session, layout, row)
            if not self.supervisor.is_alive(session_id) and await self.executors.sessions.run(
                session_id, self.reader.has_due_trigger, layout, now=to_iso(self.clock())
            ):
                await self.supervisor.wake(session_id)
            self.timer.track(session_id, layout)
            await self.timer.refresh(session_id)
        except Exception:
            log.exception("cleanup after the runner of %s exited failed", session_id)

    async def _tell_failure(
        self, session: SessionRow, layout: SessionLayout, row: ops.FailedRow
    ) -> None:
        """Both the agent and the user (at the row's reply address) learn the message failed.

        The agent's notice is written first, so whoever sees the user's notice can rely on it.
        """
        text = str(row.content.get("text") or row.content.get("prompt") or "")
        preview = text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"
        log.error("message %s of %s failed after %d tries", row.id, session.id, row.tries)
        if not row.id.startswith(NOTICE_PREFIX):  # a failed notice is not noticed: that would loop
            await self.delivery.write_to_agent(
                session,
                layout,
                {
                    "text": (
                        f"The {row.kind} message {row.id} failed {row.tries} times (your runner "
                        f"crashed or hung while handling it) and was dropped: {preview}"
                    )
                },
                id_hint=f"{NOTICE_PREFIX}failed-in-{row.id}",
            )
        if row.channel_type and row.platform_id and row.channel_type != "agent":
            what = "scheduled task" if row.kind == "task" else "message"
            notice = (
                f"Sorry: I could not process your {what} “{preview}” after {row.tries} attempts, "
                "so I gave up on it. Please try again later."
            )
            await self.notices.notify(
                row.channel_type, row.platform_id, row.thread_id, notice, failure="not_processed"
            )
        # After the notice: it is the answer (``failed``: a terminal client exits non-zero).
        await self.delivery.report_done(session.id, {row.id}, failed=True)

    # -- on time ---------------------------------------------------------------------------------
    async def _on_due(self, session_id: str, due: datetime) -> None:
        """A delayed row is about to become due: start the runner now, nudge it at ``due``."""
        if not self.supervisor.is_alive(session_id):
            await self.supervisor.wake(session_id)
        delay = max(0.0, (due - self.clock()).total_seconds()) + NUDGE_LATENESS_S
        task = asyncio.create_task(self._nudge_later(session_id, delay), name=f"nudge-{session_id}")
        self._nudges.add(task)
        task.add_done_callback(self._nudges.discard)

    async def _nudge_later(self, session_id: str, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        layout = self.timer.layout(session_id)
        if layout is None:
            return
        try:
            if self.supervisor.is_alive(session_id):
                # The runner wakes on a change of inbound.db: make one, without changing data.
                await self.executors.sessions.run(session_id, ops.nudge, self.store, layout)
            else:
                await self.supervisor.wake(session_id)
        except Exception:
            log.exception("could not start due work of %s", session_id)

    async def on_turn_done(self, session_id: str, message_ids: frozenset[str]) -> None:
        """Re-arm a recurring series as soon as its occurrence is done (the sweep is the net)."""
        if self.series.none_in(session_id):
            return  # no recurring row there (nearly every session): nothing to re-arm
        epoch = self.series.epoch()
        try:
            known = self.timer.layout(session_id)
            if known is None:  # a session the timer does not know yet
                _, layout = await self.executors.central.run(
                    self.sessions.row_and_layout, session_id
                )
            else:
                layout = known
            rearmed = await self.executors.sessions.run(
                session_id,
                rearm_ended,
                self.store,
                layout,
                now=self.clock(),
                default_tz=self.settings.timezone,
                grace_s=self.settings.task_catch_up_grace_s,
            )
            if any(r.new_id for r in rearmed):
                self.timer.track(session_id, layout)
                await self.timer.refresh(session_id)
            elif not rearmed and not await self.executors.sessions.run(
                session_id, has_series, layout
            ):
                self.series.note_none(session_id, looked_at_epoch=epoch)
        except Exception:
            log.exception("re-arming series of %s failed", session_id)


def heartbeat_mtime(layout: SessionLayout) -> float | None:
    """The runner's heartbeat time: ``lstat`` beneath the session folder's descriptor.

    The heartbeat lives in a sandbox-writable folder; a link or any non-regular entry there
    counts as no heartbeat (never followed, never opened).
    """
    try:
        with ConfinedDir.open(layout.root, "outbound") as outbound:
            st = outbound.stat_regular(layout.heartbeat.name)
    except (FileNotFoundError, SandboxFileError):
        return None
    return None if st is None else st.st_mtime
