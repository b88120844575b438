"""Agents asking the host for admin reads and writes: scope, the originating user's role, cards.

The test writes ``system`` rows into a live session's outbound.db exactly as a runner does
(``agent_runner.db.SessionDB.send``), so the agent's wishes are whatever an attacker wants.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from agent_runner.db import OutboundMessage, SessionDB

from nanoclaw.admin.service import Actor
from nanoclaw.channels.base import OutboundPayload
from nanoclaw.contract.actions import ActionStatus
from nanoclaw.contract.layout import SessionLayout
from nanoclaw.db.models import AgentGroup, SessionRow
from nanoclaw.delivery.actions import ActionResult
from nanoclaw.host import Host
from nanoclaw.sessions.outbound_reader import OutboundRow
from tests.chat_client import ChatClient
from tests.fakes.channel import FakeAdapter
from tests.helpers import make_agent, wire_chat

OWNER = "cli:olive"


@pytest.fixture
def andy(host: Host) -> AgentGroup:
    host.repo.upsert_user(OWNER, kind="cli", display_name="olive")
    host.repo.grant_role(OWNER, "owner", granted_by="test")
    agent = make_agent(host.repo, "Andy")
    wire_chat(host.repo, agent, "team", policy="public")
    return agent


async def talk(host: Host, chat: ChatClient, text: str) -> tuple[SessionRow, SessionLayout, str]:
    """A user message the agent answers; returns its session and the routed message id."""
    start = len(chat.frames)
    client_id = await chat.say(text)
    await chat.reply_containing(f"heard: {text}", start=start)
    (session,) = host.repo.sessions()
    return (
        session,
        host.sessions.layout(session),
        f"cli:{chat.chat}:{client_id}:{session.agent_group_id}",
    )


async def held_turn(
    host: Host, chat: ChatClient, release: Path
) -> tuple[SessionRow, SessionLayout, str]:
    """A user message whose turn stays in progress until ``release`` is removed.

    A real agent's request is written during the turn that asked for it: the host attributes it
    to that turn's user only while the turn is unfinished (nanoclaw.delivery.origin).
    """
    await asyncio.to_thread(release.touch)
    client_id = await chat.say(f"!hold-while {release}")
    for _ in range(750):
        sessions = host.repo.sessions()
        if sessions:
            layout = host.sessions.layout(sessions[0])
            msg = f"cli:{chat.chat}:{client_id}:{sessions[0].agent_group_id}"
            with (
                contextlib.suppress(sqlite3.OperationalError),
                sqlite3.connect(f"file:{layout.outbound_db}?mode=ro", uri=True) as conn,
            ):
                claimed = conn.execute(
                    "SELECT 1 FROM processing_ack WHERE message_id = ? AND status = 'processing'",
                    (msg,),
                ).fetchone()
                if claimed:
                    return sessions[0], layout, msg
        await asyncio.sleep(0.02)
    raise AssertionError("the held turn never started")


def agent_writes(layout: SessionLayout, content: dict[str, Any], in_reply_to: str | None) -> str:
    db = SessionDB(inbound_path=layout.inbound_db, outbound_path=layout.outbound_db)
    out_id = f"out-test-{abs(hash((json.dumps(content), in_reply_to)))}"
    db.send(OutboundMessage(kind="system", content=content, channel_type="cli", platform_id="team",
                            in_reply_to=in_reply_to, id=out_id))  # fmt: skip
    return out_id


async def results(layout: SessionLayout, out_id: str, count: int = 1) -> list[dict[str, Any]]:
    """The host's action_result rows for one request (the immediate one, then a decision)."""
    for _ in range(500):
        with sqlite3.connect(f"file:{layout.inbound_db}?mode=ro", uri=True) as conn:
            rows = [json.loads(c) for (c,) in conn.execute(
                "SELECT content FROM messages_in WHERE kind='system' ORDER BY seq")]  # fmt: skip
        found = [r for r in rows if r.get("request_id") == out_id]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"no result for {out_id}")


async def agent_asks_to_add_eve(
    host: Host, bob: ChatClient, hold: Path | None = None
) -> tuple[SessionLayout, str]:
    """Bob asks; the agent requests the write ``members.add cli:eve``; returns its request id.

    With ``hold`` the request is written during bob's turn (so the card names him); without,
    after it (so it is nobody's request, and still needs a card).
    """
    if hold is None:
        _, layout, msg = await talk(host, bob, "add eve please")
    else:
        _, layout, msg = await held_turn(host, bob, hold)
    out = agent_writes(layout, {"action": "admin_request", "op": "members.add",
                                "args": {"user": "cli:eve"}}, msg)  # fmt: skip
    return layout, out


async def test_group_scope_agent_cannot_grant_global_roles_or_widen_its_scope(
    host: Host, andy: AgentGroup
) -> None:
    async with ChatClient(host.settings.cli_socket, "team", "bob") as bob:
        _, layout, msg = await talk(host, bob, "make me admin")
        grant_args = {"user": "cli:bob", "role": "admin"}
        grant = agent_writes(
            layout, {"action": "admin_request", "op": "roles.grant", "args": grant_args}, msg
        )
        widen = agent_writes(layout, {"action": "admin_request", "op": "agents.update",
                                      "args": {"admin_scope": "global"}}, msg)  # fmt: skip
        scope_op = agent_writes(layout, {"action": "admin_request", "op": "scope.set",
                                         "args": {"scope": "global"}}, msg)  # fmt: skip
        (r1,) = await results(layout, grant)
        (r2,) = await results(layout, widen)
        (r3,) = await results(layout, scope_op)
    assert r1["status"] == "error" and "outside this agent's admin scope" in r1["text"]
    assert r2["status"] == "error" and "no agent can change an admin scope" in r2["text"]
    assert r3["status"] == "error"
    assert host.permissions.store.admin_scope(andy.id) == "group"
    membership = host.repo.membership("cli:bob")
    assert membership is not None and membership.roles == ()
    assert host.permissions.store.approvals(status=None) == []


async def test_write_by_a_non_admin_needs_a_card_and_a_denial_reaches_everyone(
    host: Host, andy: AgentGroup, tmp_path: Path
) -> None:
    sock = host.settings.cli_socket
    async with (
        ChatClient(sock, "team", "bob") as bob,
        ChatClient(sock, "dm-olive", "olive") as olive,
    ):
        hold = tmp_path / "hold"
        layout, out = await agent_asks_to_add_eve(host, bob, hold)
        (pending,) = await results(layout, out)
        assert pending["status"] == "pending"
        card = await olive.card()
        assert "admin_request members.add" in card["title"] and "cli:bob" in card["question"]
        assert host.repo.membership("cli:eve") is None  # nothing happened yet
        await asyncio.to_thread(hold.unlink)
        start = len(bob.frames)
        await olive.say("2")
        await olive.reply_containing("Denied")
        await bob.reply_containing("was denied by an admin", start=start)
        _, decision = await results(layout, out, count=2)
    assert decision["status"] == "error" and "denied by an admin" in decision["text"]
    assert host.repo.membership("cli:eve") is None


async def test_write_approved_on_the_card_runs_as_the_approver(
    host: Host, andy: AgentGroup
) -> None:
    sock = host.settings.cli_socket
    async with (
        ChatClient(sock, "team", "bob") as bob,
        ChatClient(sock, "dm-olive", "olive") as olive,
    ):
        layout, out = await agent_asks_to_add_eve(host, bob)
        card = await olive.card()
        assert "Approved" in (await olive.click(card["question_id"], "approve"))["text"]
        _, decision = await results(layout, out, count=2)
    assert decision["status"] == "ok"
    membership = host.repo.membership("cli:eve")
    assert membership is not None and andy.id in membership.member_of


async def test_an_admin_s_own_request_runs_at_once_but_a_borrowed_reference_does_not(
    host: Host, andy: AgentGroup, tmp_path: Path
) -> None:
    sock = host.settings.cli_socket
    async with ChatClient(sock, "team", "olive") as olive, ChatClient(sock, "team", "bob") as bob:
        release = tmp_path / "hold"
        _, layout, olive_msg = await held_turn(host, olive, release)
        direct = agent_writes(layout, {"action": "admin_request", "op": "members.add",
                                       "args": {"user": "cli:eve"}}, olive_msg)  # fmt: skip
        (ok,) = await results(layout, direct)
        assert ok["status"] == "ok"
        await asyncio.to_thread(release.unlink)
        await olive.reply_containing("heard: !hold-while")
        # bob speaks next; the agent points at olive's older message to borrow her role
        await talk(host, bob, "now add mallory")
        borrowed = agent_writes(layout, {"action": "admin_request", "op": "members.add",
                                         "args": {"user": "cli:mallory"}}, olive_msg)  # fmt: skip
        (pending,) = await results(layout, borrowed)
    assert pending["status"] == "pending"
    assert host.repo.membership("cli:mallory") is None
    eve = host.repo.membership("cli:eve")
    assert eve is not None and andy.id in eve.member_of


async def test_reads_stay_within_the_admin_scope(host: Host, andy: AgentGroup) -> None:
    make_agent(host.repo, "Zed")
    async with ChatClient(host.settings.cli_socket, "team", "bob") as bob:
        _, layout, msg = await talk(host, bob, "what agents exist?")
        out = agent_writes(layout, {"action": "admin_request", "op": "agents.list"}, msg)
        (group_scope,) = await results(layout, out)
        assert [a["name"] for a in json.loads(group_scope["text"])] == ["Andy"]
        host.permissions.admin.update_agent(Actor.operator(), "Andy", admin_scope="global")
        again = {"action": "admin_request", "op": "agents.list", "args": {}}  # another row
        out = agent_writes(layout, again, msg)
        (global_scope,) = await results(layout, out)
        assert sorted(a["name"] for a in json.loads(global_scope["text"])) == ["Andy", "Zed"]
        host.permissions.store.update_agent_group(andy.id, admin_scope="disabled")
        third = {"action": "admin_request", "op": "agents.list", "args": {"agent": "Andy"}}
        out = agent_writes(layout, third, msg)
        (disabled,) = await results(layout, out)
    assert disabled["status"] == "error" and "disabled" in disabled["text"]


async def test_gated_host_actions_wait_for_approval_unless_an_admin_asked(
    host: Host, andy: AgentGroup, tmp_path: Path
) -> None:
    calls: list[str] = []

    async def create_agent(session: SessionRow, row: OutboundRow) -> ActionResult:
        calls.append(str(row.content.get("name")))
        return ActionResult(ActionStatus.OK, "created")

    host.actions.register("create_agent", create_agent)
    sock = host.settings.cli_socket
    async with (
        ChatClient(sock, "team", "bob") as bob,
        ChatClient(sock, "dm-olive", "olive") as olive,
    ):
        _, layout, bob_msg = await talk(host, bob, "spawn a helper")
        out = agent_writes(layout, {"action": "create_agent", "name": "Sneaky"}, bob_msg)
        (pending,) = await results(layout, out)
        assert pending["status"] == "pending" and calls == []
        card = await olive.card()
        assert "create_agent" in card["title"]
        await olive.say("1")
        await olive.reply_containing("Approved")
        _, decision = await results(layout, out, count=2)
        assert decision["status"] == "ok" and calls == ["Sneaky"]
    async with ChatClient(sock, "team", "olive") as owner_chat:
        release = tmp_path / "hold"
        start = len(owner_chat.frames)
        _, layout, olive_msg = await held_turn(host, owner_chat, release)
        out = agent_writes(layout, {"action": "create_agent", "name": "Fine"}, olive_msg)
        (direct,) = await results(layout, out)
        await asyncio.to_thread(release.unlink)
        await owner_chat.reply_containing("heard", start=start)  # the turn ends, then the result
    assert direct["status"] == "ok" and calls == ["Sneaky", "Fine"]


class InstantApprover(FakeAdapter):
    """An approver's channel where the click lands before the card's send even returns."""

    def __init__(self, host: Host) -> None:
        super().__init__(channel_type="fake", name="fake")
        self.host = host
        self.answers: list[str] = []

    async def deliver(
        self, platform_id: str, thread_id: str | None, payload: OutboundPayload
    ) -> str | None:
        card = payload.content.get("card")
        if card is not None:
            approvals = self.host.permissions.approvals
            membership = self.host.repo.membership("fake:olive")
            self.answers.append(
                await approvals.answer(
                    card["question_id"], "approve", user_id="fake:olive", membership=membership
                )
            )
        return await super().deliver(platform_id, thread_id, payload)


async def test_the_agent_hears_pending_before_the_decision_however_fast_the_click(
    host: Host,
) -> None:
    host.repo.upsert_user("fake:olive", kind="fake", display_name="olive")
    host.repo.grant_role("fake:olive", "owner", granted_by="test")
    approver = InstantApprover(host)
    host.channels.add(approver)
    andy = make_agent(host.repo, "Andy")
    wire_chat(host.repo, andy, "team", policy="public")
    async with ChatClient(host.settings.cli_socket, "team", "bob") as bob:
        layout, out = await agent_asks_to_add_eve(host, bob)
        first, second = await results(layout, out, count=2)
    assert len(approver.answers) == 1 and "Approved" in approver.answers[0]
    assert (first["status"], second["status"]) == ("pending", "ok")
    membership = host.repo.membership("cli:eve")
    assert membership is not None and andy.id in membership.member_of
