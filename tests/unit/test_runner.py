"""The agent runner's formatter, output rules and poll-loop gates, on real session files."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from agent_runner.db import SessionDB
from agent_runner.formatter import format_batch, local_time
from agent_runner.heartbeat import Heartbeat
from agent_runner.output import Reply, parse_output
from agent_runner.poll import CLEARED_TEXT, PollLoop
from agent_runner.providers.base import Provider, TurnContext, TurnRequest, TurnResult
from agent_runner.rows import Destination, InboundRow

from nanoclaw.contract.layout import SessionLayout
from nanoclaw.contract.runner_config import RunnerConfig
from nanoclaw.sessions.store import InboundMessage, RoutingRow, SessionStore


def row(
    seq: int,
    text: str,
    *,
    kind: str = "chat",
    trigger: int = 1,
    ts: str = "2026-01-05T21:03:00.000000Z",
    channel: str = "cli",
    platform: str = "local",
    sender: str = "alice",
) -> InboundRow:
    return InboundRow(
        id=f"r{seq}",
        seq=seq,
        kind=kind,
        timestamp=ts,
        status="pending",
        process_after=None,
        trigger=trigger,
        channel_type=channel,
        platform_id=platform,
        thread_id=None,
        content={"text": text, "sender": sender, "prompt": text},
        on_wake=0,
        series_id=None,
        source_session_id=None,
    )


DESTS = [Destination("local", "terminal", "channel", "cli", "local", None)]


def test_formatter_escapes_names_times_and_sources() -> None:
    prompt = format_batch(
        [row(2, 'a <b> & "c"'), row(4, "second", platform="other")], DESTS, "America/New_York"
    )
    assert prompt.startswith('<context timezone="America/New_York" />')
    assert "<messages>" in prompt
    assert (
        'id="2" from="local" sender="alice" time="Jan 5, 2026, 4:03 PM">a &lt;b&gt; &amp; &quot;c&quot;'
        in prompt
    )
    assert 'from="unknown:cli:other"' in prompt


def test_formatter_orders_chats_before_tasks_and_system_rows() -> None:
    prompt = format_batch([row(2, "do it", kind="task"), row(4, "hi")], DESTS, "UTC")
    assert prompt.index("<message ") < prompt.index("<task ")


def test_local_time_is_twelve_hour() -> None:
    from zoneinfo import ZoneInfo

    assert local_time("2026-01-05T00:07:00Z", ZoneInfo("UTC")) == "Jan 5, 2026, 12:07 AM"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain answer", [Reply(None, "plain answer")]),
        ("<internal>thinking</internal>visible", [Reply(None, "visible")]),
        ("<internal>only thoughts</internal>", []),
        (
            'hi <message to="team">for team</message> bye',
            [Reply(None, "hi  bye"), Reply("team", "for team")],
        ),
        (
            '<message to="a">1</message><message to="b">2</message>',
            [Reply("a", "1"), Reply("b", "2")],
        ),
        ("<internal>unterminated", []),
    ],
)
def test_output_protocol(text: str, expected: list[Reply]) -> None:
    assert parse_output(text) == expected


class ScriptedProvider(Provider):
    name = "scripted"

    def __init__(self, reply: str = "ok") -> None:
        self.reply = reply
        self.requests: list[TurnRequest] = []
        self.resets = 0

    async def run_turn(self, request: TurnRequest, ctx: TurnContext) -> TurnResult:
        self.requests.append(request)
        return TurnResult(text=self.reply)

    async def reset(self, ctx: TurnContext) -> None:
        self.resets += 1


@pytest.fixture
def session(tmp_path: Path) -> tuple[SessionStore, SessionLayout]:
    store = SessionStore(sessions_root=tmp_path)
    layout = store.ensure("andy", "s1")
    store.prepare_outbound(layout)
    store.project(layout, dests=[], routing=RoutingRow("cli", "local", None))
    return store, layout


def make_loop(layout: SessionLayout, provider: Provider, tmp_path: Path, n: int = 10) -> PollLoop:
    config = RunnerConfig(
        session_id="s1",
        agent_group_id="ag",
        assistant_name="Andy",
        provider="x",
        model="m",
        timezone="UTC",
        max_messages_per_prompt=n,
        inbound_schema=2,
        outbound_schema=2,
    )
    return PollLoop(
        config=config,
        db=SessionDB(inbound_path=layout.inbound_db, outbound_path=layout.outbound_db),
        provider=provider,
        session_dir=layout.root,
        group_dir=tmp_path,
        global_dir=tmp_path,
        heartbeat=Heartbeat(layout.heartbeat),
    )


def msg(mid: str, text: str, trigger: int = 1, on_wake: int = 0) -> InboundMessage:
    return InboundMessage(
        id=mid,
        kind="chat",
        content={"text": text},
        channel_type="cli",
        platform_id="local",
        trigger=trigger,
        on_wake=on_wake,
    )


async def test_accumulate_gate_waits_for_a_trigger_then_sends_context_along(
    session: tuple[SessionStore, SessionLayout], tmp_path: Path
) -> None:
    store, layout = session
    provider = ScriptedProvider()
    loop = make_loop(layout, provider, tmp_path)
    store.insert_messages(
        layout, [msg("ctx1", "earlier", trigger=0), msg("ctx2", "more", trigger=0)]
    )
    assert await loop.poll_once() is False
    assert provider.requests == []
    store.insert_messages(layout, [msg("go", "now answer")])
    assert await loop.poll_once() is True
    assert [r.text for r in provider.requests[0].batch] == ["earlier", "more", "now answer"]


async def test_batch_takes_the_newest_n_in_order_and_on_wake_only_on_first_poll(
    session: tuple[SessionStore, SessionLayout], tmp_path: Path
) -> None:
    store, layout = session
    provider = ScriptedProvider()
    loop = make_loop(layout, provider, tmp_path, n=2)
    loop._first_poll = False
    store.insert_messages(layout, [msg("wake", "restart note", on_wake=1)])
    assert await loop.poll_once() is False  # on_wake rows are for a fresh runner's first poll
    store.insert_messages(layout, [msg("a", "1"), msg("b", "2"), msg("c", "3")])
    await loop.poll_once()
    assert [r.text for r in provider.requests[0].batch] == ["2", "3"]


async def test_clear_resets_the_provider_and_says_so(
    session: tuple[SessionStore, SessionLayout], tmp_path: Path
) -> None:
    store, layout = session
    provider = ScriptedProvider()
    loop = make_loop(layout, provider, tmp_path)
    store.insert_messages(layout, [msg("c", "/clear")])
    await loop.poll_once()
    assert provider.resets == 1 and provider.requests == []
    import sqlite3

    conn = sqlite3.connect(layout.outbound_db)
    texts = [r[0] for r in conn.execute("SELECT json_extract(content, '$.text') FROM messages_out")]
    conn.close()
    assert texts == [CLEARED_TEXT]


async def test_a_provider_crash_becomes_an_error_reply_and_a_failed_ack(
    session: tuple[SessionStore, SessionLayout], tmp_path: Path
) -> None:
    class Broken(ScriptedProvider):
        async def run_turn(self, request: TurnRequest, ctx: TurnContext) -> TurnResult:
            raise RuntimeError("model exploded")

    store, layout = session
    loop = make_loop(layout, Broken(), tmp_path)
    store.insert_messages(layout, [msg("a", "hi")])
    await loop.poll_once()
    db = SessionDB(inbound_path=layout.inbound_db, outbound_path=layout.outbound_db)
    import sqlite3

    conn = sqlite3.connect(layout.outbound_db)
    acks = dict(conn.execute("SELECT message_id, status FROM processing_ack"))
    texts = [r[0] for r in conn.execute("SELECT json_extract(content, '$.text') FROM messages_out")]
    conn.close()
    assert acks == {"a": "failed"}
    assert texts == ["Error: model exploded"]
    assert db.pending(now="9999", include_on_wake=False) == []


async def test_unknown_destination_is_reported_back_not_dropped(
    session: tuple[SessionStore, SessionLayout], tmp_path: Path
) -> None:
    store, layout = session
    loop = make_loop(layout, ScriptedProvider('<message to="nobody">psst</message>'), tmp_path)
    store.insert_messages(layout, [msg("a", "hi")])
    await loop.poll_once()
    import json
    import sqlite3

    conn = sqlite3.connect(layout.outbound_db)
    rows = [(k, json.loads(c)) for k, c in conn.execute("SELECT kind, content FROM messages_out")]
    conn.close()
    assert rows[0][0] == "system" and rows[0][1]["action"] == "notify_agent"
    assert "nobody" in rows[0][1]["text"] and rows[0][1]["undelivered_text"] == "psst"


async def test_the_loop_wakes_on_change_well_before_the_safety_net_poll(
    session: tuple[SessionStore, SessionLayout], tmp_path: Path
) -> None:
    store, layout = session
    provider = ScriptedProvider()
    loop = make_loop(layout, provider, tmp_path)
    loop.config = RunnerConfig(**{**loop.config.__dict__, "full_poll_interval_s": 30.0})
    task = asyncio.create_task(loop.run())
    for _ in range(500):  # a state, not a guess: the first poll is over, the loop now waits
        if not loop._first_poll:
            break
        await asyncio.sleep(0.01)
    store.insert_messages(layout, [msg("a", "ping")])
    for _ in range(100):  # 2 s at most, against a 30 s safety-net poll
        if provider.requests:
            break
        await asyncio.sleep(0.02)
    loop.stopping.set()
    await asyncio.wait_for(task, 5)
    assert [r.text for r in provider.requests[0].batch] == ["ping"]


def test_the_runner_starts_without_building_the_payload_models() -> None:
    # Every cold start pays for what agent_runner.main imports; the pydantic payload models
    # (about 0.2 s to build) are imported only where a turn writes one.
    probe = (
        "import sys, agent_runner.main; "
        "print(sorted(m for m in sys.modules if m.startswith(('pydantic', 'nanoclaw.contract.actions'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


async def test_rows_a_batch_left_are_answered_without_waiting_for_another_write(
    session: tuple[SessionStore, SessionLayout], tmp_path: Path
) -> None:
    store, layout = session
    provider = ScriptedProvider()
    loop = make_loop(layout, provider, tmp_path, n=1)  # one row per turn: b first, then a
    loop.config = RunnerConfig(**{**loop.config.__dict__, "full_poll_interval_s": 30.0})
    store.insert_messages(layout, [msg("a", "first"), msg("b", "second")])
    task = asyncio.create_task(loop.run())
    for _ in range(250):  # 5 s at most, against a 30 s safety-net poll and no further write
        if len(provider.requests) == 2:
            break
        await asyncio.sleep(0.02)
    loop.stopping.set()
    await asyncio.wait_for(task, 5)
    assert [[r.text for r in req.batch] for req in provider.requests] == [["second"], ["first"]]


async def test_a_reply_s_seq_is_above_every_row_of_the_poll_it_answers(
    session: tuple[SessionStore, SessionLayout], tmp_path: Path
) -> None:
    store, layout = session
    loop = make_loop(layout, ScriptedProvider(), tmp_path)
    store.insert_messages(layout, [msg("ctx", "before", trigger=0), msg("a", "hi")])  # 2, 4
    assert await loop.poll_once() is True
    store.insert_messages(layout, [msg("b", "again")])  # 6
    assert await loop.poll_once() is True
    import sqlite3

    conn = sqlite3.connect(layout.outbound_db)
    seqs = [r[0] for r in conn.execute("SELECT seq FROM messages_out ORDER BY seq")]
    conn.close()
    assert seqs == [5, 7]


def _commits(path: Path) -> int:
    """The file change counter (header offset 24): one more for each transaction that wrote."""
    with path.open("rb") as f:
        f.seek(24)
        return int.from_bytes(f.read(4), "big")


def _acks(layout: SessionLayout) -> dict[str, str]:
    import sqlite3

    conn = sqlite3.connect(f"file:{layout.outbound_db}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT message_id, status FROM processing_ack"))
    finally:
        conn.close()


async def test_a_turn_that_ends_first_is_claimed_by_the_commit_that_answers_it(
    session: tuple[SessionStore, SessionLayout], tmp_path: Path
) -> None:
    from nanoclaw.db.sqlite import EngineCache
    from nanoclaw.sessions.outbound_reader import SessionReader

    store, layout = session
    seen: list[tuple[dict[str, str], bool]] = []

    class Looking(ScriptedProvider):
        async def run_turn(self, request: TurnRequest, ctx: TurnContext) -> TurnResult:
            # What the host sees mid-turn: no claim yet, and a due row, so never "idle".
            busy = SessionReader(engines=EngineCache()).has_due_trigger(layout, now="9999")
            seen.append((_acks(layout), busy))
            return await super().run_turn(request, ctx)

    loop = make_loop(layout, Looking(), tmp_path)
    store.insert_messages(layout, [msg("ctx", "before", trigger=0), msg("a", "hi")])
    before = _commits(layout.outbound_db)
    assert await loop.poll_once() is True
    assert seen == [({}, True)]
    assert _acks(layout) == {"ctx": "completed", "a": "completed"}
    assert _commits(layout.outbound_db) == before + 1  # replies, usage and acks: one commit


async def test_a_turn_still_running_after_the_delay_is_claimed_while_it_runs(
    session: tuple[SessionStore, SessionLayout], tmp_path: Path
) -> None:
    from tests.helpers import until

    store, layout = session
    release = asyncio.Event()

    class Slow(ScriptedProvider):
        async def run_turn(self, request: TurnRequest, ctx: TurnContext) -> TurnResult:
            await release.wait()
            return await super().run_turn(request, ctx)

    loop = make_loop(layout, Slow(), tmp_path)
    store.insert_messages(layout, [msg("a", "hi")])
    turn = asyncio.create_task(loop.poll_once())
    await until(lambda: _acks(layout) == {"a": "processing"}, within_s=5)
    assert not turn.done()
    release.set()
    assert await turn is True
    assert _acks(layout) == {"a": "completed"}


async def test_a_mid_turn_write_carries_the_claim(
    session: tuple[SessionStore, SessionLayout], tmp_path: Path
) -> None:
    from agent_runner.db import OutboundMessage

    store, layout = session
    during: list[dict[str, str]] = []

    class Sending(ScriptedProvider):
        async def run_turn(self, request: TurnRequest, ctx: TurnContext) -> TurnResult:
            loop.db.send(OutboundMessage(kind="chat", content={"text": "working on it"}))
            during.append(_acks(layout))
            return await super().run_turn(request, ctx)

    loop = make_loop(layout, Sending(), tmp_path)
    store.insert_messages(layout, [msg("a", "hi")])
    assert await loop.poll_once() is True
    assert during == [{"a": "processing"}]
    assert _acks(layout) == {"a": "completed"}


async def test_rows_a_turn_gives_back_before_writing_need_no_write(
    session: tuple[SessionStore, SessionLayout], tmp_path: Path
) -> None:
    store, layout = session
    db = SessionDB(inbound_path=layout.inbound_db, outbound_path=layout.outbound_db)
    store.insert_messages(layout, [msg("a", "hi")])
    before = _commits(layout.outbound_db)
    db.claim_later(["a"])
    db.release(["a"])
    assert db.write_claim() is False  # nothing left to claim
    assert _commits(layout.outbound_db) == before
    assert [r.id for r in db.pending(now="9999", include_on_wake=False)] == ["a"]
