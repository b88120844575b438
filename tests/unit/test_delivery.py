"""The delivery loop: ACL, exactly-once under overlapping passes, persisted attempts, failure notices."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
from agent_runner.db import OutboundMessage, SessionDB

from nanoclaw.admin.store import AdminStore
from nanoclaw.channels.registry import ChannelRegistry
from nanoclaw.contract.actions import ActionStatus
from nanoclaw.db.central import CentralDB
from nanoclaw.db.models import SessionRow
from nanoclaw.db.repository import Repository
from nanoclaw.db.sqlite import EngineCache
from nanoclaw.delivery.actions import ActionResult, SystemActions
from nanoclaw.delivery.loop import DeliveryLoop
from nanoclaw.sessions.outbound_reader import OutboundRow, SessionReader
from nanoclaw.sessions.service import SessionService
from nanoclaw.sessions.store import SessionStore
from nanoclaw.sessions.writes import SessionWrites
from nanoclaw.settings import Settings
from tests.conftest import REPO_ROOT
from tests.fakes.channel import FakeAdapter
from tests.fakes.writes import RecordingWrites
from tests.helpers import make_agent, shared_executors, wire_chat


class Rig:
    def __init__(self, tmp: Path, settings: Settings) -> None:
        db = CentralDB(path=tmp / "c.db", migrations_root=REPO_ROOT / "migrations")
        db.migrate()
        self.repo = Repository(db)
        engines = EngineCache()
        self.store = SessionStore(sessions_root=tmp / "s", engines=engines)
        self.sessions = SessionService(repo=self.repo, store=self.store)
        self.adapter = FakeAdapter()
        self.channels = ChannelRegistry()
        self.channels.add(self.adapter)
        self.actions = SystemActions()
        self.woken: list[str] = []
        self.settings = settings
        self.reader = SessionReader(engines=engines)
        self.loop = self.new_loop()
        self.agent = make_agent(self.repo, "Andy")
        self.mg, _ = wire_chat(self.repo, self.agent, "room", channel="fake")
        self.session, self.layout = self.sessions.resolve(
            agent_group_id=self.agent.id,
            messaging_group_id=self.mg.id,
            thread_id=None,
            mode="shared",
        )
        self.store.prepare_outbound(self.layout)
        self.runner = SessionDB(
            inbound_path=self.layout.inbound_db, outbound_path=self.layout.outbound_db
        )

    def new_loop(self, writes: SessionWrites | None = None) -> DeliveryLoop:
        return DeliveryLoop(
            executors=shared_executors(),
            settings=self.settings,
            repo=self.repo,
            sessions=self.sessions,
            reader=self.reader,
            channels=self.channels,
            actions=self.actions,
            wake=self.woken.append,
            running_sessions=set,
            writes=writes,
        )

    def reply(
        self, text: str, *, to: str = "room", channel: str = "fake", in_reply_to: str | None = None
    ) -> int:
        return self.runner.send(
            OutboundMessage(
                kind="chat",
                content={"text": text},
                channel_type=channel,
                platform_id=to,
                in_reply_to=in_reply_to,
            )
        )

    def delivered(self) -> dict[str, tuple[str, int]]:
        conn = sqlite3.connect(self.layout.inbound_db)
        rows = {
            r[0]: (r[1], r[2])
            for r in conn.execute("SELECT message_out_id, status, attempts FROM delivered")
        }
        conn.close()
        return rows

    def agent_notices(self) -> list[str]:
        conn = sqlite3.connect(self.layout.inbound_db)
        rows = [
            json.loads(r[0]).get("text", "")
            for r in conn.execute(
                "SELECT content FROM messages_in WHERE channel_type = 'agent' ORDER BY seq"
            )
        ]
        conn.close()
        return rows


@pytest.fixture
def rig(tmp_path: Path, settings: Settings) -> Rig:
    return Rig(tmp_path, settings)


async def test_a_reply_is_delivered_once_and_recorded_with_its_platform_id(rig: Rig) -> None:
    rig.reply("hello")
    assert await rig.loop.drain(rig.session.id) == 1
    assert await rig.loop.drain(rig.session.id) == 0
    assert [s.payload.text for s in rig.adapter.sent] == ["hello"]
    ((_, (status, attempts)),) = rig.delivered().items()
    assert (status, attempts) == ("delivered", 1)


async def test_only_a_passs_last_reply_to_a_chat_lingers_for_the_next_commit(rig: Rig) -> None:
    writes = RecordingWrites(executors=shared_executors(), store=rig.store)
    loop = rig.new_loop(writes)
    for i in range(3):
        rig.reply(f"m{i}")
    assert await loop.drain(rig.session.id) == 3
    assert [s.payload.text for s in rig.adapter.sent] == ["m0", "m1", "m2"]
    assert {out_id for out_id, _ in writes.records} == set(rig.delivered())
    assert [linger for _, linger in writes.records] == [False, False, True]


async def test_overlapping_passes_never_send_a_row_twice(rig: Rig) -> None:
    rig.adapter.delay_s = 0.05
    for i in range(3):
        rig.reply(f"m{i}")
    other = rig.new_loop()
    await asyncio.gather(*(loop.drain(rig.session.id) for loop in (rig.loop, rig.loop, rig.loop)))
    await other.drain(rig.session.id)  # a second loop after a restart sees them as delivered
    assert [s.payload.text for s in rig.adapter.sent] == ["m0", "m1", "m2"]


async def test_unauthorized_destinations_are_refused_and_the_agent_is_told(rig: Rig) -> None:
    rig.repo.ensure_messaging_group(channel_type="fake", platform_id="elsewhere")
    rig.reply("leak", to="elsewhere")
    rig.reply("nowhere", to="unknown-chat")
    await rig.loop.drain(rig.session.id)
    assert rig.adapter.sent == []
    assert sorted(s for s, _ in rig.delivered().values()) == ["failed", "failed"]
    notices = rig.agent_notices()
    assert len(notices) == 2 and all("Delivery failed" in n for n in notices)
    assert rig.woken == [rig.session.id, rig.session.id]


async def test_a_destination_row_grants_sending_to_another_chat(rig: Rig) -> None:
    other, _ = wire_chat(rig.repo, make_agent(rig.repo, "Bob"), "side", channel="fake")
    rig.reply("not yet", to="side")
    await rig.loop.drain(rig.session.id)
    assert rig.adapter.sent == []
    with rig.repo.db.session() as s:
        from nanoclaw.db.models import AgentDestination

        s.add(
            AgentDestination(
                agent_group_id=rig.agent.id,
                local_name="side",
                target_type="channel",
                target_id=other.id,
            )
        )
    rig.reply("now allowed", to="side")
    await rig.loop.drain(rig.session.id)
    assert [(s.platform_id, s.payload.text) for s in rig.adapter.sent] == [("side", "now allowed")]


async def test_attempts_persist_and_the_third_failure_is_final(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig.adapter.fail_times = 10
    rig.reply("doomed")
    await rig.loop.drain(rig.session.id)
    assert list(rig.delivered().values()) == [("retrying", 1)]
    # A new loop (as after a host restart) continues the count from the DB once the backoff is due.
    conn = sqlite3.connect(rig.layout.inbound_db)
    conn.execute("UPDATE delivered SET next_attempt_at = '2000-01-01T00:00:00.000000Z'")
    conn.commit()
    fresh = rig.new_loop()
    await fresh.drain(rig.session.id)
    assert list(rig.delivered().values()) == [("retrying", 2)]
    conn.execute("UPDATE delivered SET next_attempt_at = '2000-01-01T00:00:00.000000Z'")
    conn.commit()
    conn.close()
    await fresh.drain(rig.session.id)
    assert list(rig.delivered().values()) == [("failed", 3)]
    assert rig.adapter.attempts == 3
    assert any("doomed" in n for n in rig.agent_notices())


async def test_success_after_a_failure_delivers(rig: Rig) -> None:
    rig.adapter.fail_times = 1
    rig.reply("second time lucky")
    await rig.loop.drain(rig.session.id)
    conn = sqlite3.connect(rig.layout.inbound_db)
    conn.execute("UPDATE delivered SET next_attempt_at = '2000-01-01T00:00:00.000000Z'")
    conn.commit()
    conn.close()
    await rig.loop.drain(rig.session.id)
    assert list(rig.delivered().values()) == [("delivered", 2)]
    assert rig.agent_notices() == []


async def test_a_failed_reply_to_a_failure_notice_is_not_noticed_again(rig: Rig) -> None:
    rig.reply("loop?", to="unknown-chat", in_reply_to="notice-failed-x")
    await rig.loop.drain(rig.session.id)
    assert rig.agent_notices() == []


async def test_system_rows_run_actions_and_answer_the_agent(rig: Rig) -> None:
    seen: list[str] = []

    async def echo(session: SessionRow, row: OutboundRow) -> ActionResult:
        seen.append(str(row.content.get("value")))
        return ActionResult(ActionStatus.OK, "done: " + str(row.content.get("value")))

    rig.actions.register("echo", echo)
    rig.runner.send(OutboundMessage(kind="system", content={"action": "echo", "value": "42"}))
    rig.runner.send(OutboundMessage(kind="system", content={"action": "no-such-action"}))
    await rig.loop.drain(rig.session.id)
    assert seen == ["42"]
    conn = sqlite3.connect(rig.layout.inbound_db)
    results = [
        json.loads(r[0])
        for r in conn.execute("SELECT content FROM messages_in WHERE kind = 'system'")
    ]
    conn.close()
    assert [(r["status"], r["text"]) for r in results] == [
        ("ok", "done: 42"),
        ("error", "unknown action 'no-such-action'"),
    ]


async def test_outbox_files_are_sent_and_symlinks_refused(rig: Rig, tmp_path: Path) -> None:
    seq = rig.runner.send(
        OutboundMessage(
            kind="chat",
            content={"text": "file", "files": ["a.txt"]},
            channel_type="fake",
            platform_id="room",
        )
    )
    conn = sqlite3.connect(rig.layout.outbound_db)
    (out_id,) = conn.execute("SELECT id FROM messages_out WHERE seq = ?", (seq,)).fetchone()
    conn.close()
    folder = rig.layout.outbox / out_id
    folder.mkdir(parents=True)
    (folder / "a.txt").write_text("content")
    secret = tmp_path / "secret"
    secret.write_text("do not send")
    seq2 = rig.runner.send(
        OutboundMessage(
            kind="chat",
            content={"text": "evil", "files": ["link"]},
            channel_type="fake",
            platform_id="room",
        )
    )
    conn = sqlite3.connect(rig.layout.outbound_db)
    (out2,) = conn.execute("SELECT id FROM messages_out WHERE seq = ?", (seq2,)).fetchone()
    conn.close()
    (rig.layout.outbox / out2).mkdir()
    (rig.layout.outbox / out2 / "link").symlink_to(secret)
    await rig.loop.drain(rig.session.id)
    assert [(s.payload.text, [f.data for f in s.payload.files]) for s in rig.adapter.sent] == [
        ("file", [b"content"])
    ]
    assert not folder.exists()  # cleaned after a successful send
    assert rig.delivered()[out2][0] == "failed"


async def test_replies_to_a_chat_deleted_meanwhile_are_refused(rig: Rig) -> None:
    rig.reply("first")
    await rig.loop.drain(rig.session.id)
    AdminStore(rig.repo.db).delete_messaging_group(rig.mg.id)  # e.g. `nanoclaw chats remove`
    rig.reply("after the delete")
    await rig.loop.drain(rig.session.id)
    assert [s.payload.text for s in rig.adapter.sent] == ["first"]
    assert sorted(status for status, _ in rig.delivered().values()) == ["delivered", "failed"]
