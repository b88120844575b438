"""Daily budgets per agent group: when today's spending reaches the cap, the group's turns pause.

After each turn (acked and delivered) the host ingests the session's usage; a group that
has spent its ``container_configs.daily_budget_usd`` today has its runners stopped and the
chat is told. While the day lasts no runner of the group starts
(the start hook refuses, so messages wait pending, invariant 4), and each chat that writes
meanwhile is told once. The next day the sweep's due-work wake starts them again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from nanoclaw.contract.runner_config import RunnerConfig
from nanoclaw.db.models import SessionRow
from nanoclaw.db.repository import Repository
from nanoclaw.delivery.notices import Notifier
from nanoclaw.errors import NanoclawError, RuntimeUnavailableError
from nanoclaw.executors import Executors
from nanoclaw.runtime.base import RunSpec
from nanoclaw.tasks import Spawn
from nanoclaw.usage.ledger import UsageLedger

log = logging.getLogger("nanoclaw.usage.budget")

StopGroup = Callable[[str], Awaitable[None]]  # stops every running runner of an agent group
SpecHook = Callable[[RunSpec, RunnerConfig], Awaitable[tuple[RunSpec, RunnerConfig]]]


def usd(amount: float) -> str:
    """Cents for amounts of a dollar or more, tenths of a cent below."""
    return f"${amount:,.2f}" if amount >= 1 else f"${amount:.4f}"


class BudgetExceededError(RuntimeUnavailableError):
    """The agent group's daily budget is spent; its runners do not start until tomorrow."""


class BudgetGuard:
    def __init__(
        self,
        *,
        executors: Executors,
        repo: Repository,
        ledger: UsageLedger,
        notices: Notifier,
        spawn: Spawn,
    ) -> None:
        self.executors = executors
        self.repo = repo
        self.ledger = ledger
        self.notices = notices
        self.spawn = spawn  # the host's task owner: the "budget spent" notice goes out meanwhile
        self._told: set[tuple[str, str]] = set()  # (session id, day) already told

    def over_budget(self, agent_group_id: str) -> tuple[float, float] | None:
        """(spent, budget) when the group's daily budget is spent, else None."""
        with self.repo.db.plain(write=False) as conn:
            row = conn.execute(
                "SELECT daily_budget_usd FROM container_configs WHERE agent_group_id = ?",
                (agent_group_id,),
            ).fetchone()
        budget = None if row is None else row[0]  # no config row: no budget (the default)
        if budget is None or budget <= 0:
            return None
        spent = self.ledger.spent(agent_group_id)
        return (spent, float(budget)) if spent >= budget else None

    def message(self, spent: float, budget: float) -> str:
        return (
            f"This agent's daily budget is spent ({usd(spent)} of {usd(budget)} today)."
            " It will answer again tomorrow; an operator can raise the budget."
        )

    # -- hooks -------------------------------------------------------------------------------
    def wrap_spec_hook(self, inner: SpecHook | None) -> SpecHook:
        """Refuse a start while the group is over budget, then run the other start hook."""

        async def hook(spec: RunSpec, config: RunnerConfig) -> tuple[RunSpec, RunnerConfig]:
            over = await self.executors.central.run(self.over_budget, spec.agent_group_id)
            if over is not None:
                self.spawn(self._tell(spec.session_id, *over), f"budget-{spec.session_id}")
                raise BudgetExceededError(
                    f"daily budget of agent group {spec.agent_group_id} is spent", runtime="any"
                )
            if inner is None:
                return spec, config
            return await inner(spec, config)

        return hook

    async def account(self, session_id: str, stop: StopGroup) -> None:
        """Ingest the session's usage; pause the group (``stop``) if that spent its budget."""
        try:
            session, over = await self.executors.central.run(self._ingest, session_id)
        except NanoclawError as exc:
            log.warning("usage of %s not accounted: %s", session_id, exc)
            return
        if over is None:
            return
        log.warning("agent group %s spent its daily budget; pausing", session.agent_group_id)
        await stop(session.agent_group_id)
        await self._tell(session_id, *over, session=session)

    def _ingest(self, session_id: str) -> tuple[SessionRow, tuple[float, float] | None]:
        """Blocking, one central job: copy the session's new usage rows; if there were any,
        whether its group is now over budget."""
        session = self.repo.session(session_id)
        if not self.ledger.ingest(session):
            return session, None
        return session, self.over_budget(session.agent_group_id)

    async def _tell(
        self, session_id: str, spent: float, budget: float, *, session: SessionRow | None = None
    ) -> None:
        key = (session_id, self.ledger.today())
        if key in self._told:
            return
        self._told.add(key)
        try:
            if session is None:
                session = await self.executors.central.run(self.repo.session, session_id)
            if not session.messaging_group_id:
                return
            mg = await self.executors.central.run(
                self.repo.messaging_group_by_id, session.messaging_group_id
            )
            if mg is None:
                return
            await self.notices.notify(
                mg.channel_type,
                mg.platform_id,
                session.thread_id,
                self.message(spent, budget),
                failure="budget_spent",
            )
        except Exception:
            log.exception("could not tell session %s about its budget", session_id)


class BudgetPause:
    """After each turn: account its usage and stop the group's runners once the budget is spent.

    Built after the supervisor (it stops runners), while the guard is built before it (the
    supervisor's start hook refuses starts).
    """

    def __init__(
        self,
        *,
        executors: Executors,
        guard: BudgetGuard,
        repo: Repository,
        stop_session: Callable[[str], Awaitable[None]],
        running_sessions: Callable[[], set[str]],
    ) -> None:
        self.executors = executors
        self.guard = guard
        self.repo = repo
        self.stop_session = stop_session
        self.running_sessions = running_sessions

    async def on_turn_done(self, session_id: str, message_ids: frozenset[str]) -> None:
        await self.guard.account(session_id, self.stop_group)

    async def stop_group(self, agent_group_id: str) -> None:
        for sid in self.running_sessions():
            other = await self.executors.central.run(self.repo.session, sid)
            if other.agent_group_id == agent_group_id:
                await self.stop_session(sid)
