"""Every runner→host action payload, good and bad, written into a real ``outbound.db``: the host
carries out the good ones and refuses each bad one naming its field, with no effect at all."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from agent_runner.db import OutboundMessage, SessionDB, new_out_id

from nanoclaw.contract.actions import PAYLOADS, ActionName, ActionStatus, parse_payload
from nanoclaw.contract.layout import SessionLayout
from nanoclaw.contract.timeutil import to_iso, utc_now
from nanoclaw.db.models import AgentGroup, SessionRow
from nanoclaw.delivery import origin as origin_module
from nanoclaw.delivery.loop import DeliveryLoop
from nanoclaw.errors import PayloadError
from nanoclaw.host import Host, build_host
from nanoclaw.sessions.outbound_reader import OutboundRow
from nanoclaw.sessions.store import InboundMessage
from nanoclaw.settings import Settings
from tests.helpers import make_agent, wire_chat

OWNER = "cli:olive"
ASKED = "m-olive-1"  # the owner's message every request answers: the owner asked (no card)
N = ActionName


@dataclass
class World:
    host: Host
    ada: AgentGroup
    session: SessionRow
    layout: SessionLayout
    runner: SessionDB
    loop: DeliveryLoop
    woken: list[str]

    def request(
        self, action: str, payload: dict[str, Any], *, deliver_after: str | None = None
    ) -> str:
        """Write the request as the runner does, answering the owner's message; its id."""
        out_id = new_out_id()
        self.runner.send(
            OutboundMessage(
                kind="system",
                content={"action": action, **payload},
                channel_type="cli",
                platform_id="room",
                in_reply_to=ASKED,
                id=out_id,
                deliver_after=deliver_after,
            )
        )
        return out_id

    def answer(self, out_id: str) -> dict[str, Any] | None:
        """The host's answer to a request, once written."""
        rows = self._inbound("SELECT content FROM messages_in WHERE id = ?", (f"result-{out_id}",))
        return json.loads(rows[0][0]) if rows else None

    async def ask(self, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        """Write the request as the runner does, run one delivery pass, return the answer."""
        out_id = self.request(action, payload)
        await self.loop.drain(self.session.id)
        return self.answer(out_id)

    def _inbound(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(f"file:{self.layout.inbound_db}?mode=ro", uri=True)
        try:
            return list(conn.execute(sql, args))
        finally:
            conn.close()

    def state(self) -> dict[str, Any]:
        """Everything an action could change: every central table, the session's own rows
        (less the host's answers to requests) and the files under the groups folder."""
        conn = sqlite3.connect(f"file:{self.host.settings.central_db_path}?mode=ro", uri=True)
        try:
            tables = [
                r[0]
                for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                if r[0] != "alembic_version"
            ]
            central = {t: sorted(map(repr, conn.execute(f'SELECT * FROM "{t}"'))) for t in tables}
        finally:
            conn.close()
        inbound = self._inbound(
            "SELECT id, kind, content, status, process_after, recurrence FROM messages_in"
            " WHERE kind != 'system' ORDER BY seq"
        )
        groups = Path(self.host.settings.groups_path)
        files = sorted(str(p.relative_to(groups)) for p in groups.rglob("*"))
        return {"central": central, "inbound": inbound, "files": files}

    def tasks(self) -> dict[str, dict[str, Any]]:
        rows = self._inbound(
            "SELECT id, content, status, process_after, recurrence FROM messages_in"
            " WHERE kind = 'task' ORDER BY seq"
        )
        return {
            r[0]: {"content": json.loads(r[1]), "status": r[2], "when": r[3], "repeat": r[4]}
            for r in rows
        }


@pytest.fixture
async def world(settings: Settings) -> AsyncIterator[World]:
    host = build_host(settings)  # not started: this test runs the delivery passes itself
    host.db.migrate()
    host.repo.upsert_user(OWNER, kind="cli", display_name="olive")
    host.repo.grant_role(OWNER, "owner", granted_by="test")
    ada = make_agent(host.repo, "Ada")
    make_agent(host.repo, "Bob")
    mg, _ = wire_chat(host.repo, ada, "room")
    session, layout = host.sessions.resolve(
        agent_group_id=ada.id, messaging_group_id=mg.id, thread_id=None, mode="shared"
    )
    host.sessions.store.prepare_outbound(layout)
    host.sessions.store.insert_messages(
        layout,
        [
            InboundMessage(
                id=ASKED,
                kind="chat",
                content={"text": "please", "sender_id": OWNER, "sender": "olive"},
                channel_type="cli",
                platform_id="room",
            )
        ],
    )
    woken: list[str] = []
    loop = DeliveryLoop(
        executors=host.executors,
        settings=settings,
        repo=host.repo,
        sessions=host.sessions,
        reader=host.reader,
        channels=host.channels,
        actions=host.actions,
        wake=woken.append,
        running_sessions=set,
        origins=host.permissions.gate.origins,
    )
    runner = SessionDB(inbound_path=layout.inbound_db, outbound_path=layout.outbound_db)
    yield World(host, ada, session, layout, runner, loop, woken)
    await host.executors.close()
    host.db.engine.dispose()


LONG = 20_001
WHEN = "2026-03-01T09:00:00Z"
# (action, payload, the field the refusal names, or a phrase of it for a model-wide rule)
BAD: list[tuple[str, dict[str, Any], str]] = [
    (N.SCHEDULE_TASK, {"task_id": "task-a", "process_after": WHEN}, "'prompt' is required"),
    (N.SCHEDULE_TASK, {"task_id": "task-a", "prompt": " ", "process_after": WHEN}, "'prompt'"),
    (
        N.SCHEDULE_TASK,
        {"task_id": "task-a", "prompt": "p" * LONG, "process_after": WHEN},
        "'prompt'",
    ),
    (N.SCHEDULE_TASK, {"task_id": "task-a", "prompt": 7, "process_after": WHEN}, "'prompt'"),
    (
        N.SCHEDULE_TASK,
        {"task_id": "task-a", "prompt": "p", "process_after": "soon"},
        "'process_after'",
    ),
    (N.SCHEDULE_TASK, {"task_id": "task-a", "prompt": "p"}, "'process_after' is required"),
    (N.SCHEDULE_TASK, {"task_id": "a b", "prompt": "p", "process_after": WHEN}, "'task_id'"),
    (
        N.SCHEDULE_TASK,
        {"task_id": "task-a", "prompt": "p", "process_after": WHEN, "script": "s" * LONG},
        "'script'",
    ),
    (
        N.SCHEDULE_TASK,
        {"task_id": "task-a", "prompt": "p", "process_after": WHEN, "priority": 1},
        "'priority' is not a field",
    ),
    (
        N.SCHEDULE_TASK,
        {"task_id": "task-a", "prompt": "p", "process_after": WHEN, "recurrence": "often"},
        "cron",
    ),
    (N.UPDATE_TASK, {"prompt": "p"}, "'task_id' is required"),
    (N.UPDATE_TASK, {"task_id": "task-live"}, "nothing to change"),
    (N.UPDATE_TASK, {"task_id": "task-live", "prompt": "p" * LONG}, "'prompt'"),
    (N.UPDATE_TASK, {"task_id": "task-live", "process_after": "tomorrow"}, "'process_after'"),
    (N.UPDATE_TASK, {"task_id": "task-live", "script": 3}, "'script'"),
    (
        N.UPDATE_TASK,
        {"task_id": "task-live", "prompt": "p", "owner": "x"},
        "'owner' is not a field",
    ),
    (N.CANCEL_TASK, {}, "'task_id' is required"),
    (N.CANCEL_TASK, {"task_id": 5}, "'task_id'"),
    (N.PAUSE_TASK, {"task_id": "  "}, "'task_id' must not be blank"),
    (N.RESUME_TASK, {"task_id": "task-live", "all": True}, "'all' is not a field"),
    (N.CREATE_AGENT, {}, "'name' is required"),
    (N.CREATE_AGENT, {"name": "R" * 65}, "'name'"),
    (N.CREATE_AGENT, {"name": "   "}, "'name' must not be blank"),
    (N.CREATE_AGENT, {"name": "Rev", "instructions": "i" * LONG}, "'instructions'"),
    (N.CREATE_AGENT, {"name": "Rev", "instructions": 5}, "'instructions'"),
    (N.CREATE_AGENT, {"name": "Rev", "folder": "x"}, "'folder' is not a field"),
    (N.INSTALL_PACKAGES, {"pip": "httpx"}, "'pip'"),
    (N.INSTALL_PACKAGES, {"pip": [1]}, "'pip.0'"),
    (N.INSTALL_PACKAGES, {"apt": ["jq; rm -rf /"]}, "jq; rm -rf /"),
    (N.INSTALL_PACKAGES, {"pip": ["httpx"], "npm": ["x"]}, "'npm' is not a field"),
    (N.ADD_MCP_SERVER, {"command": "python"}, "'name' is required"),
    (N.ADD_MCP_SERVER, {"name": "notes", "command": "python", "env": {"A": 1}}, "'env.A'"),
    (N.ADD_MCP_SERVER, {"name": "notes", "command": "python", "args": "-m notes"}, "'args'"),
    (N.ADD_MCP_SERVER, {"name": "notes", "command": "python", "url": "http://x"}, "'url' is not"),
    (N.ADD_DESTINATION, {"agent": "Bob"}, "'name' is required"),
    (N.ADD_DESTINATION, {"name": "bob", "agent": "Bob", "chat": "cli/side"}, "exactly one of"),
    (N.ADD_DESTINATION, {"name": "bob", "agent": 3}, "'agent'"),
    (N.REMOVE_DESTINATION, {"name": ""}, "'name'"),
    (N.WIRE_CHAT, {"chat": "cli/side", "engage": "sometimes"}, "'engage'"),
    (N.WIRE_CHAT, {"engage": "mention"}, "'chat' is required"),
    (N.UNWIRE_CHAT, {"chat": 7}, "'chat'"),
    (N.ADD_MOUNT, {"read_write": True}, "'host_path' is required"),
    (N.ADD_MOUNT, {"host_path": "~/data", "read_write": "yes"}, "'read_write'"),
    (N.RESTART_AGENT, {"note": 5}, "'note'"),
    (N.RESTART_AGENT, {"now": True}, "'now' is not a field"),
    (N.ADMIN_REQUEST, {"args": {}}, "'op' is required"),
    (N.ADMIN_REQUEST, {"op": "members.add", "args": ["cli:bob"]}, "'args'"),
    (N.NOTIFY_AGENT, {"undelivered_text": "psst"}, "'text' is required"),
]


@pytest.mark.parametrize(("action", "payload", "named"), BAD, ids=lambda v: str(v)[:40])
async def test_a_bad_payload_is_refused_naming_its_field_and_changes_nothing(
    world: World, action: str, payload: dict[str, Any], named: str
) -> None:
    await world.ask(N.SCHEDULE_TASK, {"task_id": "task-live", "prompt": "p", "process_after": WHEN})
    before = world.state()
    answer = await world.ask(action, payload)
    assert answer is not None
    assert answer["status"] == ActionStatus.ERROR
    assert answer["text"].startswith(f"{action}: "), answer["text"]
    assert named in answer["text"], answer["text"]
    assert world.state() == before  # no row, no agent, no wiring, no card, no file


async def test_a_bad_script_report_is_dropped_unanswered_and_changes_nothing(world: World) -> None:
    await world.ask(N.SCHEDULE_TASK, {"task_id": "task-live", "prompt": "p", "process_after": WHEN})
    before = world.state()
    for bad in ({"task_id": "task-live", "outcome": "maybe"}, {"outcome": "woke"}):
        assert await world.ask(N.TASK_SCRIPT, bad) is None  # an answer would wake the agent
    assert world.state() == before
    good = await world.ask(N.TASK_SCRIPT, {"task_id": "task-live", "outcome": "skipped"})
    assert good is None
    assert world.tasks()["task-live"]["content"]["script_run"]["outcome"] == "skipped"


async def test_the_task_actions_carry_out_good_payloads(world: World) -> None:
    ok = await world.ask(
        N.SCHEDULE_TASK,
        {"task_id": "task-t1", "prompt": "stand-up", "process_after": "2026-03-01T10:00:00+01:00",
         "recurrence": "0 9 * * 1-5", "script": "echo '{\"wakeAgent\": true}'"},
    )  # fmt: skip
    assert ok is not None and ok["status"] == ActionStatus.OK, ok
    task = world.tasks()["task-t1"]
    assert task["when"].startswith("2026-03-01T09:00:00") and task["repeat"] == "0 9 * * 1-5"
    assert task["content"]["script"].startswith("echo")
    ok = await world.ask(N.UPDATE_TASK, {"task_id": "task-t1", "prompt": "retro", "script": "",
                                         "recurrence": ""})  # fmt: skip
    assert ok is not None and ok["status"] == ActionStatus.OK, ok
    task = world.tasks()["task-t1"]
    assert task["content"] == {"prompt": "retro"} and task["repeat"] is None
    for action, status in ((N.PAUSE_TASK, "paused"), (N.RESUME_TASK, "pending")):
        ok = await world.ask(action, {"task_id": "task-t1"})
        assert ok is not None and ok["status"] == ActionStatus.OK, ok
        assert world.tasks()["task-t1"]["status"] == status
    ok = await world.ask(N.CANCEL_TASK, {"task_id": "task-t1"})
    assert ok is not None and ok["status"] == ActionStatus.OK, ok
    assert world.tasks()["task-t1"]["status"] != "pending"
    told = await world.ask(N.NOTIFY_AGENT, {"text": "Your message was not sent.",
                                            "undelivered_text": "psst"})  # fmt: skip
    assert told is not None and told["text"] == "Your message was not sent."


async def test_the_gated_actions_carry_out_good_payloads_for_an_owner(world: World) -> None:
    repo = world.host.repo
    ok = await world.ask(N.CREATE_AGENT, {"name": "  Reviewer ", "instructions": "Be brief."})
    assert ok is not None and ok["status"] == ActionStatus.OK, ok
    reviewer = repo.agent_group("Reviewer")
    local = world.host.settings.groups_path / reviewer.folder / "CLAUDE.local.md"
    assert local.read_text() == "Be brief.\n"
    ok = await world.ask(N.ADD_DESTINATION, {"name": "bob", "agent": "Bob"})
    assert ok is not None and ok["status"] == ActionStatus.OK, ok
    assert "bob" in {d.local_name for d in repo.destinations(world.ada.id)}
    ok = await world.ask(N.REMOVE_DESTINATION, {"name": "bob"})
    assert ok is not None and ok["status"] == ActionStatus.OK, ok
    assert "bob" not in {d.local_name for d in repo.destinations(world.ada.id)}
    ok = await world.ask(N.WIRE_CHAT, {"chat": "cli/side", "engage": "mention"})
    assert ok is not None and ok["status"] == ActionStatus.OK, ok
    assert "(mention)" in ok["text"]
    ok = await world.ask(N.UNWIRE_CHAT, {"chat": "cli/side"})
    assert ok is not None and ok["status"] == ActionStatus.OK, ok
    ok = await world.ask(N.ADD_MCP_SERVER, {"name": "notes", "command": "python",
                                            "args": ["-m", "notes"], "env": {}})  # fmt: skip
    assert ok is not None and ok["status"] == ActionStatus.OK, ok
    ok = await world.ask(N.RESTART_AGENT, {"note": "new mount"})
    assert ok is not None and ok["status"] == ActionStatus.OK, ok
    ok = await world.ask(N.ADMIN_REQUEST, {"op": "agents.list", "args": {}})
    assert ok is not None and ok["status"] == ActionStatus.OK, ok
    assert [a["name"] for a in json.loads(ok["text"])] == ["Ada"]  # its group scope


# Good payloads whose effect needs more than this host has (a package build, an allowlist):
# the model accepts them as the runner writes them.
PARSE_ONLY: list[tuple[ActionName, dict[str, Any]]] = [
    (N.INSTALL_PACKAGES, {"pip": ["httpx"], "apt": [], "reason": "HTTP"}),
    (N.ADD_MOUNT, {"host_path": "~/data", "container_path": "data", "read_write": False}),
    (N.TASK_SCRIPT, {"task_id": "task-1", "outcome": "error", "reason": None}),
]


@pytest.mark.parametrize(("action", "payload"), PARSE_ONLY)
def test_the_other_good_payloads_parse(action: ActionName, payload: dict[str, Any]) -> None:
    parsed = parse_payload(PAYLOADS[action], {"action": action.value, **payload})
    assert parsed.model_dump(mode="json", exclude_none=True) == {
        k: v for k, v in payload.items() if v is not None
    }


def test_every_registered_runner_action_has_its_payload_model(world: World) -> None:
    assert sorted(world.host.actions.names()) == sorted(a.value for a in ActionName)
    assert set(PAYLOADS) == set(ActionName)
    with pytest.raises(PayloadError) as caught:
        parse_payload(PAYLOADS[N.CANCEL_TASK], {"action": "cancel_task", "task_id": 1, "x": 2})
    assert caught.value.fields == ("task_id", "x") and caught.value.field == "task_id"


async def test_a_request_below_the_delivery_floor_keeps_no_origin(world: World) -> None:
    # Decided at first sight and used to authorize the owner's request; once the request is
    # terminal and below the floor nothing asks again, so a long-lived host does not keep it.
    out_id = world.request(N.RESTART_AGENT, {"note": "settled"})
    decided: list[str | None] = []
    origin_of = world.loop.origins.origin
    gate = world.host.permissions.gate
    original = gate.origin_user_sync

    def watched(session: SessionRow, row: OutboundRow) -> str | None:
        decided.append(origin_of(session.id, row.id))
        return original(session, row)

    gate.origin_user_sync = watched  # type: ignore[method-assign]
    await world.loop.drain(world.session.id)
    answer = world.answer(out_id)
    assert answer is not None and answer["status"] == ActionStatus.OK
    assert OWNER in decided  # the owner's authority was decided and used
    assert origin_of(world.session.id, out_id) is None


async def test_a_request_waiting_for_its_time_keeps_the_origin_it_was_decided_with(
    world: World,
) -> None:
    # Decided when first read, while the owner's turn was open. The turn then ends and the host
    # looks twice more before the request is due: decided afresh, it would name nobody (a card).
    # Kept until the floor passes it, it runs as the owner.
    later = to_iso(utc_now() + timedelta(seconds=5))  # after the three drains below
    out_id = world.request(N.RESTART_AGENT, {"note": "later"}, deliver_after=later)
    await world.loop.drain(world.session.id)
    world.runner.claim([ASKED])
    world.runner.finish([ASKED], [])
    await world.loop.drain(world.session.id)
    await world.loop.drain(world.session.id)
    assert world.answer(out_id) is None  # not due yet
    deadline = asyncio.get_running_loop().time() + 10
    while world.answer(out_id) is None and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)  # until its time comes
        await world.loop.drain(world.session.id)
    answer = world.answer(out_id)
    assert answer is not None and answer["status"] == ActionStatus.OK


async def test_an_evicted_decision_reads_as_nobody_and_is_not_decided_again(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another user's message is open with the owner's, so the request names nobody at first
    # sight (a card). Evicted by a later request while it waits for its time, and read again
    # after that user's turn ended, it must not be decided afresh as the owner's.
    monkeypatch.setattr(origin_module, "DECISIONS_KEPT_PER_SESSION", 1)
    world.host.sessions.store.insert_messages(
        world.layout,
        [
            InboundMessage(
                id="m-bob-1",
                kind="chat",
                content={"text": "me too", "sender_id": "cli:bob", "sender": "bob"},
                channel_type="cli",
                platform_id="room",
            )
        ],
    )
    later = to_iso(utc_now() + timedelta(seconds=3))
    out_id = world.request(N.RESTART_AGENT, {"note": "whose?"}, deliver_after=later)
    world.request(N.RESTART_AGENT, {"note": "evicts it"}, deliver_after=later)
    await world.loop.drain(world.session.id)
    assert world.loop.origins.origin(world.session.id, out_id) is None  # evicted
    world.runner.claim(["m-bob-1"])
    world.runner.finish(["m-bob-1"], [])  # bob's turn ends; the owner's is still open
    await world.loop.drain(world.session.id)
    await world.loop.drain(world.session.id)
    deadline = asyncio.get_running_loop().time() + 15
    while world.answer(out_id) is None and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)  # until its time comes
        await world.loop.drain(world.session.id)
    answer = world.answer(out_id)
    assert answer is not None and answer["status"] == ActionStatus.PENDING  # a card
