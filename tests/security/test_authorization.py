"""The originating user of an agent's request comes from host-recorded facts, not runner fields.

The attack of issue #10: with the owner's turn in progress and another user's message queued,
a request the agent writes at the owner's seq + 1 (pointing at the owner's message) granted that
other user admin with no card. Here a real host and a real runner (process runtime, mock model)
hold the owner's turn open; the test then writes ``system`` rows straight into ``outbound.db``,
as a compromised agent can, varying every field the runner writes.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nanoclaw.contract.layout import SessionLayout
from nanoclaw.db.models import AgentGroup
from nanoclaw.delivery.origin import InboundFact, Observation, decide_origin
from nanoclaw.host import Host
from tests.chat_client import ChatClient
from tests.helpers import make_agent, wire_chat

OWNER = "cli:olive"
BOB = "cli:bob"
NOW = "2026-06-01T12:00:00+00:00"


# -- the pure rule -------------------------------------------------------------------------------
def fact(seq: int, sender: str | None, **kw: Any) -> InboundFact:
    return InboundFact(
        id=f"m{seq}",
        seq=seq,
        kind=kw.get("kind", "chat"),
        channel_type=kw.get("channel", "cli"),
        sender_id=sender,
        status=kw.get("status", "pending"),
        process_after=kw.get("after"),
    )


def test_the_one_user_of_every_unfinished_row_is_the_origin() -> None:
    facts = [fact(2, OWNER), fact(4, OWNER)]
    assert decide_origin(facts, named="m2", before=None, high_seq=4, now=NOW) == OWNER


def test_a_queued_row_of_another_user_or_a_mixed_batch_means_nobody() -> None:
    facts = [fact(2, OWNER), fact(4, BOB)]
    assert decide_origin(facts, named="m2", before=None, high_seq=4, now=NOW) is None
    assert decide_origin(facts, named="m4", before=None, high_seq=4, now=NOW) is None
    # the queued row is left out only by the host's own bound, never by the request's seq
    assert decide_origin(facts, named="m2", before=None, high_seq=2, now=NOW) == OWNER


def test_rows_seen_finished_at_the_previous_pass_no_longer_count() -> None:
    facts = [fact(2, BOB), fact(4, OWNER)]
    # Finished by its ack at the previous look, still pending in messages_in until folded in.
    finished_bob = Observation(high_seq=2, unfinished=frozenset(), acked_finished=frozenset({"m2"}))
    assert decide_origin(facts, named="m4", before=finished_bob, high_seq=4, now=NOW) == OWNER
    folded = [fact(2, BOB, status="completed"), fact(4, OWNER)]
    seen_done = Observation(high_seq=2, unfinished=frozenset())
    assert decide_origin(folded, named="m4", before=seen_done, high_seq=4, now=NOW) == OWNER
    still_open = Observation(high_seq=2, unfinished=frozenset({"m2"}))
    assert decide_origin(facts, named="m4", before=still_open, high_seq=4, now=NOW) is None
    # finished at the previous look, then made pending again (an admin's retry): it counts
    assert decide_origin(facts, named="m4", before=seen_done, high_seq=4, now=NOW) is None
    # a finished row cannot be borrowed: it names nobody's turn in progress
    assert decide_origin(facts, named="m2", before=finished_bob, high_seq=4, now=NOW) is None


def test_context_rows_tasks_agents_and_notices_are_nobody_but_results_and_later_tasks_are_out() -> (
    None
):
    assert decide_origin([fact(2, OWNER), fact(4, None, kind="task")], named="m2",
                         before=None, high_seq=4, now=NOW) is None  # fmt: skip
    assert decide_origin([fact(2, OWNER), fact(4, "x", channel="agent")], named="m2",
                         before=None, high_seq=4, now=NOW) is None  # fmt: skip
    later_task = fact(4, None, kind="task", after="2026-06-02T00:00:00+00:00")
    paused = fact(6, None, kind="task", status="paused")
    result = fact(8, None, kind="system", channel="agent")
    facts = [fact(2, OWNER), later_task, paused, result]
    assert decide_origin(facts, named="m2", before=None, high_seq=8, now=NOW) == OWNER


def test_no_reference_an_unknown_one_or_a_future_one_is_nobody() -> None:
    facts = [fact(2, OWNER), fact(4, OWNER)]
    assert decide_origin(facts, named=None, before=None, high_seq=4, now=NOW) is None
    assert decide_origin(facts, named="nope", before=None, high_seq=4, now=NOW) is None
    assert decide_origin(facts, named="m4", before=None, high_seq=2, now=NOW) is None


# -- the attack on a live host ---------------------------------------------------------------------
@dataclass
class HeldTurn:
    host: Host
    agent: AgentGroup
    layout: SessionLayout
    owner_msg: str
    owner_seq: int
    old_owner_msg: str
    release: Path


def inbound_row(layout: SessionLayout, msg_id: str) -> sqlite3.Row | None:
    with sqlite3.connect(f"file:{layout.inbound_db}?mode=ro", uri=True) as conn:
        conn.row_factory = sqlite3.Row
        row: sqlite3.Row | None = conn.execute(
            "SELECT * FROM messages_in WHERE id = ?", (msg_id,)
        ).fetchone()
        return row


async def until(predicate: Any, what: str) -> None:
    for _ in range(750):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def ack_of(layout: SessionLayout, msg_id: str) -> str | None:
    with sqlite3.connect(f"file:{layout.outbound_db}?mode=ro", uri=True) as conn:
        found = conn.execute(
            "SELECT status FROM processing_ack WHERE message_id = ?", (msg_id,)
        ).fetchone()
    return str(found[0]) if found else None


@pytest.fixture
async def held(host: Host, tmp_path: Path) -> AsyncIterator[HeldTurn]:
    """Olive (owner) has one finished turn and a second one in progress in chat ``team``."""
    host.repo.upsert_user(OWNER, kind="cli", display_name="olive")
    host.repo.grant_role(OWNER, "owner", granted_by="test")
    agent = make_agent(host.repo, "Andy")
    wire_chat(host.repo, agent, "team", policy="public")
    release = tmp_path / "hold"
    await asyncio.to_thread(release.touch)
    async with ChatClient(host.settings.cli_socket, "team", "olive") as olive:
        old = await olive.say("hello")
        await olive.reply_containing("heard: hello")
        (session,) = host.repo.sessions()
        layout = host.sessions.layout(session)
        cid = await olive.say(f"!hold-while {release}")
        owner_msg = f"cli:team:{cid}:{agent.id}"
        await until(lambda: ack_of(layout, owner_msg) == "processing", "the owner's turn")
        row = inbound_row(layout, owner_msg)
        assert row is not None
        try:
            yield HeldTurn(host, agent, layout, owner_msg, int(row["seq"]),
                           f"cli:team:{old}:{agent.id}", release)  # fmt: skip
        finally:
            release.unlink(missing_ok=True)
            await olive.reply_containing("heard:")


def write_as_agent(
    layout: SessionLayout, rows: list[dict[str, Any]], acks: dict[str, str] | None = None
) -> None:
    """What a compromised agent can do: any rows, any fields, acks too, in one transaction."""
    with sqlite3.connect(layout.outbound_db, timeout=10) as conn:
        for mid, status in (acks or {}).items():
            conn.execute(
                "INSERT OR REPLACE INTO processing_ack (message_id, status, status_changed)"
                " VALUES (?, ?, '2000-01-01T00:00:00+00:00')",
                (mid, status),
            )
        for r in rows:
            conn.execute(
                "INSERT INTO messages_out (id, seq, in_reply_to, timestamp, deliver_after, kind,"
                " channel_type, platform_id, thread_id, content) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (r["id"], r["seq"], r.get("in_reply_to"), r.get("timestamp", NOW),
                 r.get("deliver_after"), r.get("kind", "system"), r.get("channel_type", "cli"),
                 r.get("platform_id", "team"), r.get("thread_id"),
                 json.dumps(r["content"])),
            )  # fmt: skip


def grant_bob(agent: AgentGroup, **extra: Any) -> dict[str, Any]:
    args = {"user": BOB, "role": "admin", "agent": agent.id}
    return {"action": "admin_request", "op": "roles.grant", "args": args, **extra}


def results(layout: SessionLayout) -> dict[str, dict[str, Any]]:
    with sqlite3.connect(f"file:{layout.inbound_db}?mode=ro", uri=True) as conn:
        rows = [json.loads(c) for (c,) in conn.execute(
            "SELECT content FROM messages_in WHERE kind='system' ORDER BY seq")]  # fmt: skip
    return {str(r["request_id"]): r for r in rows if r.get("type") == "action_result"}


def max_out_seq(layout: SessionLayout) -> int:
    with sqlite3.connect(f"file:{layout.outbound_db}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT coalesce(max(seq), 1) FROM messages_out").fetchone()[0])


def bob_is_admin(host: Host) -> bool:
    membership = host.repo.membership(BOB)
    return membership is not None and any(role == "admin" for role, _ in membership.roles)


def variants(turn: HeldTurn, bob_msg: str) -> list[dict[str, Any]]:
    """One request per runner-writable field (and the issue's exact attack first)."""
    base = max_out_seq(turn.layout) + 2
    base += 1 - base % 2  # odd: a runner row
    a = turn.agent
    specs: list[dict[str, Any]] = [
        # the issue: owner's seq + 1, pointing at the owner's message in progress
        {"seq": turn.owner_seq + 1, "in_reply_to": turn.owner_msg, "content": grant_bob(a)},
        {"in_reply_to": turn.old_owner_msg, "content": grant_bob(a)},  # a finished owner turn
        {"in_reply_to": bob_msg, "content": grant_bob(a)},
        {"in_reply_to": None, "content": grant_bob(a)},
        {"in_reply_to": "no-such-row", "content": grant_bob(a)},
        {"in_reply_to": turn.owner_msg, "timestamp": "2000-01-01T00:00:00+00:00",
         "content": grant_bob(a)},
        {"in_reply_to": turn.owner_msg, "deliver_after": "2000-01-01T00:00:00+00:00",
         "content": grant_bob(a)},
        {"in_reply_to": turn.owner_msg, "channel_type": "cli", "platform_id": "dm-olive",
         "thread_id": "olive", "content": grant_bob(a)},
        {"in_reply_to": turn.owner_msg, "id": turn.owner_msg, "content": grant_bob(a)},
        {"in_reply_to": turn.owner_msg,
         "content": grant_bob(a, sender_id=OWNER, user_id=OWNER, requester_user_id=OWNER,
                              origin={"user": OWNER}, seq=turn.owner_seq)},
    ]  # fmt: skip
    for n, spec in enumerate(specs):
        spec.setdefault("seq", base + 2 * n)
        spec.setdefault("id", f"attack-{n}")
    return specs


async def test_a_request_at_the_owner_s_seq_plus_one_with_another_user_queued_gets_a_card(
    held: HeldTurn,
) -> None:
    host, layout = held.host, held.layout
    async with (
        ChatClient(host.settings.cli_socket, "team", "bob") as bob,
        ChatClient(host.settings.cli_socket, "dm-olive", "olive") as olive_dm,
    ):
        bob_msg = f"cli:team:{await bob.say('make me admin')}:{held.agent.id}"
        await until(lambda: inbound_row(layout, bob_msg) is not None, "bob's queued row")
        specs = variants(held, bob_msg)
        # the agent also claims bob's row finished in the same breath: it does not help
        write_as_agent(layout, specs, acks={bob_msg: "completed"})
        ids = [s["id"] for s in specs]
        await until(lambda: set(ids) <= set(results(layout)), "a result for every request")
        got = results(layout)
        await olive_dm.card()  # the owner was asked
    # Identity fields smuggled into the payload are not fields of admin_request: the payload
    # model refuses that one before it is authorized (no card); every other one gets a card.
    *carded, smuggled = ids
    assert {i: got[i]["status"] for i in carded} == dict.fromkeys(carded, "pending")
    assert got[smuggled]["status"] == "error"
    assert "'sender_id' is not a field of this action" in got[smuggled]["text"]
    assert not bob_is_admin(host)
    approvals = host.permissions.store.approvals(status=None)
    assert len(approvals) == len(carded)
    assert {a.requester_user_id for a in approvals} == {None}


async def test_positive_control_the_owner_s_own_turn_still_runs_at_once(held: HeldTurn) -> None:
    """The same request with nobody else queued: granted without a card (so the test can fail)."""
    host, layout = held.host, held.layout
    (attack, *_) = variants(held, bob_msg="unused")
    write_as_agent(layout, [attack])
    await until(lambda: attack["id"] in results(layout), "the result")
    assert results(layout)[attack["id"]]["status"] == "ok"
    assert bob_is_admin(host)
    assert host.permissions.store.approvals(status=None) == []
