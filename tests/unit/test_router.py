"""Every router rule of upstream §3, on a real central DB and real session files."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from nanoclaw.channels.base import Attachment, InboundEvent, InboundMessage
from nanoclaw.db.central import CentralDB
from nanoclaw.db.models import AgentGroup
from nanoclaw.db.repository import Repository
from nanoclaw.routing.router import Router
from nanoclaw.sessions.activity import SessionActivity
from nanoclaw.sessions.service import SessionService
from nanoclaw.sessions.store import SessionStore
from tests.conftest import REPO_ROOT
from tests.fakes.routing import RecordingApprovals, RecordingReplier, RecordingWaker
from tests.helpers import make_agent, shared_executors, wire_chat


class World:
    def __init__(self, tmp: Path, threaded: frozenset[str] = frozenset({"slack"})) -> None:
        db = CentralDB(path=tmp / "central.db", migrations_root=REPO_ROOT / "migrations")
        db.migrate()
        self.repo = Repository(db)
        self.store = SessionStore(sessions_root=tmp / "sessions")
        self.sessions = SessionService(repo=self.repo, store=self.store)
        self.waker = RecordingWaker()
        self.replier = RecordingReplier()
        self.approvals = RecordingApprovals()
        self.activity = SessionActivity(
            executors=shared_executors(), repo=self.repo, spawn=lambda coro, name: coro.close()
        )
        self.router = Router(
            executors=shared_executors(),
            repo=self.repo,
            sessions=self.sessions,
            activity=self.activity,
            waker=self.waker,
            replier=self.replier,
            approvals=self.approvals,
            threaded_channels=threaded,
        )
        self._n = 0

    def event(
        self,
        text: str,
        *,
        chat: str = "room",
        channel: str = "cli",
        sender: str = "alice",
        mention: bool = False,
        group: bool = True,
        thread: str | None = None,
        attachments: tuple[Attachment, ...] = (),
    ) -> InboundEvent:
        self._n += 1
        return InboundEvent(
            channel,
            chat,
            thread,
            InboundMessage(
                id=f"m{self._n}",
                text=text,
                sender=sender,
                is_mention=mention,
                is_group=group,
                attachments=attachments,
            ),
        )

    def rows(self, agent: AgentGroup) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for session in self.repo.sessions():
            if session.agent_group_id != agent.id:
                continue
            conn = sqlite3.connect(self.sessions.layout(session).inbound_db)
            conn.row_factory = sqlite3.Row
            out += [
                dict(r) | {"session": session.id}
                for r in conn.execute("SELECT * FROM messages_in ORDER BY seq")
            ]
            conn.close()
        return out


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


async def test_pattern_dot_always_engages_and_wakes(world: World) -> None:
    andy = make_agent(world.repo, "Andy")
    wire_chat(world.repo, andy, "room", engage_mode="pattern", engage_pattern=".")
    outcome = await world.router.route(world.event("anything"))
    assert len(outcome.deliveries) == 1 and outcome.deliveries[0].trigger == 1
    assert world.waker.woken == [outcome.deliveries[0].session_id]
    (row,) = world.rows(andy)
    assert row["id"] == f"cli:room:m1:{andy.id}" and row["seq"] == 2 and row["trigger"] == 1
    assert json.loads(str(row["content"]))["text"] == "anything"


async def test_pattern_regex_filters_and_a_stored_pattern_re2_refuses_fails_closed(
    world: World,
) -> None:
    andy = make_agent(world.repo, "Andy")
    bob = make_agent(world.repo, "Bob")
    zed = make_agent(world.repo, "Zed")
    wire_chat(world.repo, andy, "room", engage_mode="pattern", engage_pattern=r"^@andy\b")
    wire_chat(world.repo, bob, "room", engage_mode="pattern", engage_pattern="([unclosed")
    wire_chat(world.repo, zed, "room", engage_mode="pattern", engage_pattern=r"(\w)\1")
    outcome = await world.router.route(world.event("hello all"))
    assert outcome.deliveries == [] and outcome.dropped == "no_agent_engaged"
    outcome = await world.router.route(world.event("@andy hi, aa"))
    assert {d.agent_group_id for d in outcome.deliveries} == {andy.id}


async def test_mention_mode_needs_a_mention(world: World) -> None:
    andy = make_agent(world.repo, "Andy")
    wire_chat(world.repo, andy, "room", engage_mode="mention", engage_pattern=None)
    assert (await world.router.route(world.event("hi"))).dropped == "no_agent_engaged"
    assert len((await world.router.route(world.event("hi", mention=True))).deliveries) == 1


async def test_mention_sticky_follows_up_in_a_group_once_a_session_exists(world: World) -> None:
    andy = make_agent(world.repo, "Andy")
    wire_chat(
        world.repo, andy, "room", engage_mode="mention-sticky", engage_pattern=None, is_group=True
    )
    assert (await world.router.route(world.event("before"))).deliveries == []
    assert len((await world.router.route(world.event("@andy", mention=True))).deliveries) == 1
    assert len((await world.router.route(world.event("follow-up"))).deliveries) == 1
    # In a direct chat (not a group) stickiness does not apply.
    wire_chat(
        world.repo, andy, "dm", engage_mode="mention-sticky", engage_pattern=None, is_group=False
    )
    await world.router.route(world.event("@andy", chat="dm", mention=True, group=False))
    assert (await world.router.route(world.event("x", chat="dm", group=False))).deliveries == []


async def test_fan_out_gives_each_agent_its_own_session_and_message_id(world: World) -> None:
    andy, bob = make_agent(world.repo, "Andy"), make_agent(world.repo, "Bob")
    wire_chat(world.repo, andy, "room")
    wire_chat(world.repo, bob, "room")
    outcome = await world.router.route(world.event("both of you"))
    assert len({d.session_id for d in outcome.deliveries}) == 2
    assert {d.message_id for d in outcome.deliveries} == {
        f"cli:room:m1:{andy.id}",
        f"cli:room:m1:{bob.id}",
    }
    assert sorted(world.waker.woken) == sorted(d.session_id for d in outcome.deliveries)


async def test_accumulate_stores_context_without_waking_and_drop_writes_nothing(
    world: World,
) -> None:
    andy, bob = make_agent(world.repo, "Andy"), make_agent(world.repo, "Bob")
    wire_chat(
        world.repo,
        andy,
        "room",
        engage_mode="mention",
        engage_pattern=None,
        ignored_message_policy="accumulate",
    )
    wire_chat(world.repo, bob, "room", engage_mode="mention", engage_pattern=None)
    outcome = await world.router.route(world.event("just chatting"))
    assert [d.trigger for d in outcome.deliveries] == [0]
    assert world.waker.woken == []
    assert [r["trigger"] for r in world.rows(andy)] == [0]
    assert world.rows(bob) == []


async def test_session_modes(world: World) -> None:
    andy = make_agent(world.repo, "Andy")
    wire_chat(world.repo, andy, "C1", channel="slack", is_group=True, session_mode="shared")
    first = await world.router.route(world.event("a", chat="C1", channel="slack", thread="t1"))
    second = await world.router.route(world.event("b", chat="C1", channel="slack", thread="t2"))
    # A threaded channel in a group forces per-thread sessions.
    assert first.deliveries[0].session_id != second.deliveries[0].session_id
    # A non-threaded channel ignores thread ids: one shared session.
    wire_chat(world.repo, andy, "room", session_mode="shared")
    s1 = await world.router.route(world.event("a", thread="x"))
    s2 = await world.router.route(world.event("b", thread="y"))
    assert s1.deliveries[0].session_id == s2.deliveries[0].session_id


async def test_agent_shared_sessions_span_chats(world: World) -> None:
    andy = make_agent(world.repo, "Andy")
    wire_chat(world.repo, andy, "one", session_mode="agent-shared")
    wire_chat(world.repo, andy, "two", session_mode="agent-shared")
    a = await world.router.route(world.event("a", chat="one"))
    b = await world.router.route(world.event("b", chat="two"))
    assert a.deliveries[0].session_id == b.deliveries[0].session_id
    rows = world.rows(andy)
    assert [(r["platform_id"], r["seq"]) for r in rows] == [("one", 2), ("two", 4)]


async def test_unknown_chat_without_mention_is_ignored_without_writes(world: World) -> None:
    outcome = await world.router.route(world.event("hello", chat="nowhere"))
    assert outcome.dropped == "unknown_chat"
    assert world.repo.messaging_group("cli", "nowhere") is None
    assert world.repo.dropped() == []


async def test_unwired_chat_mention_is_audited_and_handed_to_the_approval_seam(
    world: World,
) -> None:
    outcome = await world.router.route(world.event("hi", chat="new", mention=True))
    assert outcome.dropped == "no_agent_wired"
    mg = world.repo.messaging_group("cli", "new")
    assert mg is not None and mg.unknown_sender_policy == "request_approval"
    assert [d.reason for d in world.repo.dropped()] == ["no_agent_wired"]
    assert world.approvals.unwired_chats == ["new"]
    receipt = outcome.receipt()
    assert receipt.delivered_to == 0 and receipt.reason == "no_agent_wired"


async def test_unknown_sender_policies(world: World) -> None:
    andy = make_agent(world.repo, "Andy")
    wire_chat(world.repo, andy, "strict", policy="strict")
    wire_chat(world.repo, andy, "ask", policy="request_approval")
    wire_chat(world.repo, andy, "open", policy="public")
    assert (
        await world.router.route(world.event("hi", chat="strict"))
    ).dropped == "unknown_sender_strict"
    assert (
        await world.router.route(world.event("hi", chat="ask"))
    ).dropped == "unknown_sender_request_approval"
    assert world.approvals.unknown_senders == [("ask", "cli:alice")]
    assert len((await world.router.route(world.event("hi", chat="open"))).deliveries) == 1
    world.repo.add_member("cli:alice", andy.id, added_by=None)
    assert len((await world.router.route(world.event("hi", chat="strict"))).deliveries) == 1
    reasons = sorted(d.reason for d in world.repo.dropped())
    assert reasons == ["unknown_sender_request_approval", "unknown_sender_strict"]


async def test_sender_scope_known_refuses_strangers_even_in_public_chats(world: World) -> None:
    andy = make_agent(world.repo, "Andy")
    wire_chat(world.repo, andy, "open", policy="public", sender_scope="known")
    assert (await world.router.route(world.event("hi", chat="open"))).dropped == "sender_scope"
    world.repo.add_member("cli:alice", andy.id, added_by=None)
    assert len((await world.router.route(world.event("hi", chat="open"))).deliveries) == 1


async def test_admin_commands_need_admin_and_the_denial_reaches_the_sender(world: World) -> None:
    andy = make_agent(world.repo, "Andy")
    wire_chat(world.repo, andy, "room")
    outcome = await world.router.route(world.event("/clear"))
    assert outcome.deliveries == [] and outcome.dropped == "permission_denied"
    assert world.replier.replies == [("room", "Permission denied: /clear requires admin access.")]
    assert world.rows(andy) == []
    world.repo.grant_role("cli:alice", "admin", agent_group_id=andy.id, granted_by=None)
    assert len((await world.router.route(world.event("/clear"))).deliveries) == 1


async def test_filtered_commands_vanish(world: World) -> None:
    andy = make_agent(world.repo, "Andy")
    wire_chat(world.repo, andy, "room")
    outcome = await world.router.route(world.event("/login now"))
    assert outcome.deliveries == [] and world.replier.replies == [] and world.rows(andy) == []


async def test_users_are_upserted_with_channel_prefixed_ids(world: World) -> None:
    andy = make_agent(world.repo, "Andy")
    wire_chat(world.repo, andy, "room")
    await world.router.route(world.event("hi", sender="bob"))
    await world.router.route(world.event("hi", sender="slack:U1"))
    assert world.repo.membership("cli:bob") is not None
    assert world.repo.membership("slack:U1") is not None


async def test_attachments_are_saved_confined_with_hostile_names_replaced(world: World) -> None:
    andy = make_agent(world.repo, "Andy")
    wire_chat(world.repo, andy, "room")
    event = world.event(
        "files",
        attachments=(
            Attachment(name="../../etc/passwd", data=b"evil"),
            Attachment(name="notes.txt", data=b"ok", mime="text/plain"),
        ),
    )
    outcome = await world.router.route(event)
    (row,) = world.rows(andy)
    attachments = json.loads(str(row["content"]))["attachments"]
    assert [a["name"] for a in attachments] == ["attachment-0", "notes.txt"]
    session = world.repo.session(outcome.deliveries[0].session_id)
    root = world.sessions.layout(session).root
    for att in attachments:
        path = (root / att["path"]).resolve()
        assert root.resolve() in path.parents and path.is_file()
    assert (root / attachments[1]["path"]).read_bytes() == b"ok"
