"""The routing decision on its own: ``RoutePlanner.plan`` on a real central DB, and the apply
step doing exactly what a plan lists (recording fakes)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from nanoclaw.admin.store import AdminStore, NewApproval
from nanoclaw.channels.base import InboundEvent, InboundMessage
from nanoclaw.db.central import CentralDB
from nanoclaw.db.repository import Repository
from nanoclaw.routing.apply import PlanApplier
from nanoclaw.routing.modes import DropReason, SessionMode
from nanoclaw.routing.plan import (
    ApprovalKind,
    PlannedApproval,
    PlannedDrop,
    PlannedWrite,
    RoutePlan,
)
from nanoclaw.routing.planner import RoutePlanner
from nanoclaw.sessions.service import SessionService
from nanoclaw.sessions.store import SessionStore
from tests.conftest import REPO_ROOT
from tests.fakes.routing import (
    RecordingApprovals,
    RecordingAudit,
    RecordingCommands,
    RecordingReplier,
    RecordingWaker,
    RecordingWriter,
)
from tests.helpers import make_agent, shared_executors, wire_chat


class Central:
    def __init__(self, tmp: Path) -> None:
        self.db = CentralDB(path=tmp / "central.db", migrations_root=REPO_ROOT / "migrations")
        self.db.migrate()
        self.repo = Repository(self.db)
        self.sessions_root = tmp / "sessions"
        self.sessions = SessionService(
            repo=self.repo, store=SessionStore(sessions_root=self.sessions_root)
        )
        self.planner = RoutePlanner(repo=self.repo, threaded_channels=frozenset({"slack"}))

    def plan(self, event: InboundEvent) -> tuple[RoutePlan, int]:
        """The plan and how many central-DB transactions making it took."""
        with _counting_begins(self.db) as begins:
            plan = self.planner.plan(event)
        return plan, len(begins)


@contextmanager
def _counting_begins(db: CentralDB) -> Iterator[list[str]]:
    """The transactions begun on the one central connection, ORM or plain: its ``BEGIN``s as
    SQLite runs them (the connection's trace callback)."""
    begins: list[str] = []

    def on_statement(statement: str) -> None:
        if statement.startswith("BEGIN"):
            begins.append(statement)

    fairy = db.engine.raw_connection()  # the pool's one connection: every transaction's
    try:
        driver = fairy.driver_connection
        assert isinstance(driver, sqlite3.Connection)
    finally:
        fairy.close()
    driver.set_trace_callback(on_statement)
    try:
        yield begins
    finally:
        driver.set_trace_callback(None)


def _event(
    text: str, *, chat: str = "room", sender: str = "alice", mention: bool = False, n: int = 1
) -> InboundEvent:
    return InboundEvent(
        "cli",
        chat,
        None,
        InboundMessage(id=f"m{n}", text=text, sender=sender, is_mention=mention, is_group=True),
    )


@pytest.fixture
def central(tmp_path: Path) -> Central:
    return Central(tmp_path)


def test_an_unknown_sender_is_planned_as_a_drop_with_an_approval_and_no_write(
    central: Central,
) -> None:
    andy = make_agent(central.repo, "Andy")
    _, wiring = wire_chat(central.repo, andy, "room", policy="request_approval")
    plan, transactions = central.plan(_event("hi"))
    assert transactions == 1
    assert plan.writes == () and plan.wakes == ()
    assert plan.dropped == DropReason.UNKNOWN_SENDER_REQUEST_APPROVAL
    assert plan.drops == (PlannedDrop(DropReason.UNKNOWN_SENDER_REQUEST_APPROVAL, andy.id),)
    assert [(a.kind, a.wiring.id if a.wiring else None) for a in plan.approvals] == [
        (ApprovalKind.UNKNOWN_SENDER, wiring.id)
    ]
    assert plan.user_id == "cli:alice" and plan.offers_commands


def test_a_strict_chat_drops_an_unknown_sender_without_asking(central: Central) -> None:
    andy = make_agent(central.repo, "Andy")
    wire_chat(central.repo, andy, "room", policy="strict")
    plan, _ = central.plan(_event("hi"))
    assert plan.dropped == DropReason.UNKNOWN_SENDER_STRICT
    assert plan.drops == (PlannedDrop(DropReason.UNKNOWN_SENDER_STRICT, andy.id),)
    assert plan.approvals == () and plan.writes == ()


def test_mention_mode_engages_on_a_mention_only(central: Central) -> None:
    andy = make_agent(central.repo, "Andy")
    wire_chat(central.repo, andy, "room", engage_mode="mention", engage_pattern=None)
    quiet, _ = central.plan(_event("hi"))
    assert quiet.writes == () and quiet.dropped == DropReason.NO_AGENT_ENGAGED
    assert quiet.drops == (PlannedDrop(DropReason.NO_AGENT_ENGAGED),)
    plan, transactions = central.plan(_event("hi @andy", mention=True, n=2))
    assert transactions == 1
    (write,) = plan.writes
    assert write.agent_group_id == andy.id and write.agent_folder == "andy"
    assert write.trigger == 1 and plan.wakes == (write,)
    assert write.message_id == f"cli:room:m2:{andy.id}"
    assert plan.dropped is None and plan.drops == () and plan.replies == ()


def test_a_chat_wired_to_two_agents_fans_out_to_both(central: Central) -> None:
    andy = make_agent(central.repo, "Andy")
    bob = make_agent(central.repo, "Bob")
    wire_chat(central.repo, andy, "room")
    wire_chat(central.repo, bob, "room")
    plan, transactions = central.plan(_event("hello both"))
    assert transactions == 1
    assert {w.agent_group_id for w in plan.writes} == {andy.id, bob.id}
    assert {w.message_id for w in plan.writes} == {
        f"cli:room:m1:{andy.id}",
        f"cli:room:m1:{bob.id}",
    }
    assert plan.wakes == plan.writes and plan.dropped is None


def test_an_unwired_chat_mention_registers_the_chat_and_plans_an_approval(
    central: Central,
) -> None:
    plan, transactions = central.plan(_event("anyone?", chat="new", mention=True))
    assert transactions == 1
    assert plan.messaging_group is not None and plan.messaging_group.platform_id == "new"
    assert plan.messaging_group.unknown_sender_policy == "request_approval"
    assert plan.dropped == DropReason.NO_AGENT_WIRED
    assert plan.drops == (PlannedDrop(DropReason.NO_AGENT_WIRED),)
    assert plan.approvals == (PlannedApproval(ApprovalKind.UNWIRED_CHAT),)
    assert central.repo.messaging_group("cli", "new") is not None


def test_an_admin_command_from_a_member_plans_the_denial_reply(central: Central) -> None:
    andy = make_agent(central.repo, "Andy")
    wire_chat(central.repo, andy, "room")
    plan, _ = central.plan(_event("/clear"))
    assert plan.writes == () and plan.dropped == DropReason.PERMISSION_DENIED
    assert plan.replies == ("Permission denied: /clear requires admin access.",)


def test_the_plan_names_the_existing_session_or_none_for_a_new_one(central: Central) -> None:
    andy = make_agent(central.repo, "Andy")
    mg, _ = wire_chat(central.repo, andy, "room")
    first, _ = central.plan(_event("hi"))
    (write,) = first.writes
    assert write.session_id is None  # the apply step creates it
    assert write.mode == SessionMode.SHARED and write.messaging_group_id == mg.id
    assert not central.sessions_root.exists()  # planning wrote no session files
    assert central.repo.sessions() == []
    session, _ = central.sessions.resolve(
        agent_group_id=andy.id, messaging_group_id=mg.id, thread_id=None, mode="shared"
    )
    again, transactions = central.plan(_event("again", n=2))
    assert transactions == 1
    assert [w.session_id for w in again.writes] == [session.id]


def test_mention_sticky_follow_up_engages_only_once_the_plan_sees_a_session(
    central: Central,
) -> None:
    andy = make_agent(central.repo, "Andy")
    mg, _ = wire_chat(
        central.repo, andy, "room", is_group=True, engage_mode="mention-sticky", engage_pattern=None
    )
    before, _ = central.plan(_event("follow-up"))
    assert before.writes == () and before.dropped == DropReason.NO_AGENT_ENGAGED
    session, _ = central.sessions.resolve(
        agent_group_id=andy.id, messaging_group_id=mg.id, thread_id=None, mode="shared"
    )
    after, _ = central.plan(_event("follow-up", n=2))
    assert [w.session_id for w in after.writes] == [session.id]


def _applier(
    commands: RecordingCommands | None = None,
) -> tuple[
    PlanApplier,
    RecordingWriter,
    RecordingAudit,
    RecordingWaker,
    RecordingReplier,
    RecordingApprovals,
]:
    writer, audit, waker = RecordingWriter(), RecordingAudit(), RecordingWaker()
    replier, approvals = RecordingReplier(), RecordingApprovals()
    applier = PlanApplier(
        executors=shared_executors(),
        writer=writer,
        audit=audit,
        waker=waker,
        replier=replier,
        approvals=approvals,
        commands=commands,
    )
    return applier, writer, audit, waker, replier, approvals


async def test_apply_performs_exactly_what_the_plan_lists(central: Central) -> None:
    andy = make_agent(central.repo, "Andy")
    bob = make_agent(central.repo, "Bob")
    zed = make_agent(central.repo, "Zed")
    mg, _ = wire_chat(central.repo, andy, "room", policy="request_approval")
    _, bob_wiring = wire_chat(central.repo, bob, "room", policy="request_approval")
    wire_chat(central.repo, zed, "room", policy="request_approval")
    event = _event("hi")
    existing = PlannedWrite(andy.id, "andy", "sess-a", mg.id, None, SessionMode.SHARED, "a", 1)
    context = PlannedWrite(zed.id, "zed", None, mg.id, None, SessionMode.SHARED, "z", 0)
    plan = RoutePlan(
        event,
        "cli:alice",
        mg,
        None,
        writes=(existing, context),
        drops=(PlannedDrop(DropReason.UNKNOWN_SENDER_REQUEST_APPROVAL, bob.id),),
        approvals=(PlannedApproval(ApprovalKind.UNKNOWN_SENDER, bob_wiring),),
        replies=("a reply",),
    )
    commands = RecordingCommands()
    applier, writer, audit, waker, replier, approvals = _applier(commands)
    outcome = await applier.apply(plan)

    assert commands.seen == ["hi"]
    assert writer.writes == [existing, context]
    assert [(d.reason, d.agent_group_id, d.user_id, d.messaging_group_id) for d in audit.drops] == [
        (DropReason.UNKNOWN_SENDER_REQUEST_APPROVAL, bob.id, "cli:alice", mg.id)
    ]
    assert approvals.unknown_sender_wirings == [bob_wiring.id]
    assert approvals.unknown_senders == [("room", "cli:alice")] and approvals.unwired_chats == []
    assert replier.replies == [("room", "a reply")]
    assert waker.woken == ["sess-a"]  # the context row (trigger 0) wakes nobody
    assert [(d.session_id, d.trigger) for d in outcome.deliveries] == [
        ("sess-a", 1),
        (f"new-{zed.id}", 0),
    ]
    assert outcome.dropped is None and not outcome.consumed


async def test_apply_of_a_planned_drop_writes_and_wakes_nothing(central: Central) -> None:
    plan, _ = central.plan(_event("anyone?", chat="new", mention=True))
    applier, writer, audit, waker, replier, approvals = _applier()
    outcome = await applier.apply(plan)
    assert writer.writes == [] and waker.woken == [] and replier.replies == []
    assert [d.reason for d in audit.drops] == [DropReason.NO_AGENT_WIRED]
    assert approvals.unwired_chats == ["new"] and approvals.unknown_senders == []
    assert outcome.dropped == DropReason.NO_AGENT_WIRED and outcome.deliveries == []


async def test_the_chats_open_cards_ride_with_the_plan_to_the_commands(central: Central) -> None:
    andy = make_agent(central.repo, "Andy")
    wire_chat(central.repo, andy, "room")
    store = AdminStore(central.repo.db)
    card = store.create_approval(
        NewApproval(
            kind="sender",
            title="t",
            question="Let them in?",
            options=[{"label": "Allow", "value": "allow"}],
            payload={},
            ttl_s=3600.0,
        )
    )
    assert card is not None
    store.set_card(card.id, "cli", "room", "m-card")
    plan, _ = central.plan(_event("1"))
    commands = RecordingCommands()
    applier, *_ = _applier(commands)
    await applier.apply(plan)
    assert commands.cards == [[card.id]]  # read in the route's one transaction, not again
    assert store.decide(card.id, status="approved", by="cli:alice", decision="allow")
    later, _ = central.plan(_event("1", n=2))
    await applier.apply(later)
    assert commands.cards[-1] == []


async def test_apply_stops_when_the_host_commands_consume_the_message(central: Central) -> None:
    andy = make_agent(central.repo, "Andy")
    wire_chat(central.repo, andy, "room")
    plan, _ = central.plan(_event("/wire here"))
    assert plan.writes  # planned, but the commands come first
    applier, writer, audit, waker, replier, approvals = _applier(RecordingCommands(consume=True))
    outcome = await applier.apply(plan)
    assert outcome.consumed and outcome.deliveries == []
    assert writer.writes == [] and audit.drops == [] and waker.woken == []
    assert replier.replies == [] and approvals.unknown_senders == []
