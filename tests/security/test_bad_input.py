"""Bad input ends visibly at the door: invalid Unicode is replaced, an unhandled message is listed.

Issue #10: "A text with a lone surrogate is accepted and its reply fails three times unseen", and
a message the host cannot handle after the channel acknowledged it was simply gone. Here a real
host receives events exactly as an adapter hands them over (``on_inbound``), with a real fault
(the sessions folder replaced by a file) for the unhandled case.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nanoclaw.channels.base import InboundEvent, InboundMessage
from nanoclaw.channels.text import (
    REPLACEMENT_CHAR,
    clean_event,
    has_lone_surrogates,
    replace_lone_surrogates,
    require_valid_unicode,
)
from nanoclaw.errors import ValidationError
from nanoclaw.host import Host
from nanoclaw.routing.unhandled import list_unhandled
from tests.fakes.channel import FakeAdapter
from tests.helpers import make_agent, wire_chat

LONE = "hi \ud83d there"  # the high half of 😀 with no low half, as JSON "\ud83d" decodes


def event(text: str, mid: str = "m1", sender: str = "bob") -> InboundEvent:
    return InboundEvent("fake", "room", None, InboundMessage(id=mid, text=text, sender=sender))


def test_the_helpers_find_replace_and_refuse_lone_surrogates() -> None:
    assert has_lone_surrogates(LONE) and not has_lone_surrogates("hi 😀 there")
    assert replace_lone_surrogates(LONE) == f"hi {REPLACEMENT_CHAR} there"
    assert replace_lone_surrogates("a\udc00b\ud800") == f"a{REPLACEMENT_CHAR}b{REPLACEMENT_CHAR}"
    replace_lone_surrogates(LONE).encode("utf-8")  # now encodable: SQLite and platforms take it
    with pytest.raises(ValidationError, match=r"text is not valid Unicode: .*U\+D83D.*position 3"):
        require_valid_unicode(LONE, field="text")
    assert require_valid_unicode("ok 😀", field="text") == "ok 😀"
    cleaned, changed = clean_event(event(LONE, sender="b\udc00b"))
    assert changed and cleaned.message.text == replace_lone_surrogates(LONE)
    assert cleaned.message.sender == f"b{REPLACEMENT_CHAR}b"
    same, changed = clean_event(event("fine"))
    assert not changed and same == event("fine")


@pytest.fixture
def fake(host: Host) -> FakeAdapter:
    adapter = FakeAdapter()
    host.channels.add(adapter)
    wire_chat(host.repo, make_agent(host.repo, "Andy"), "room", channel="fake", policy="public")
    return adapter


async def until(predicate: object, what: str) -> None:
    for _ in range(750):
        if callable(predicate) and predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_lone_surrogate_is_replaced_and_the_message_answered(
    host: Host, fake: FakeAdapter
) -> None:
    receipt = await host.on_inbound(event(LONE))
    assert receipt.delivered_to == 1
    expected = f"heard: hi {REPLACEMENT_CHAR} there"
    await until(lambda: any(expected in (s.payload.text or "") for s in fake.sent), "the reply")
    (session,) = host.repo.sessions()
    assert not [s for s in fake.sent if has_lone_surrogates(s.payload.text or "")]
    layout = host.sessions.layout(session)
    # The send is recorded just after it returns: wait for the recorded state.
    await until(lambda: bool(host.reader.deliveries(layout)), "the delivery record")
    assert [d.status for d in host.reader.deliveries(layout).values()] == ["delivered"]


async def test_a_message_no_session_can_take_is_recorded_told_and_logged_once(
    host: Host, fake: FakeAdapter, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    sessions = host.settings.sessions_path
    if sessions.exists():
        shutil.rmtree(sessions)
    sessions.write_text("not a folder")  # a real fault: no session folder can be created
    with caplog.at_level(logging.ERROR, logger="nanoclaw.routing.unhandled"):
        receipts = [await host.on_inbound(event(f"hello {n}", mid=f"m{n}")) for n in range(3)]
    assert [r.reason for r in receipts] == ["internal_error"] * 3  # the adapter's answer
    # the sender is told each time (a durable host notice through the channel) ...
    await until(lambda: len([s for s in fake.sent if "could not be handled" in (s.payload.text
                or "")]) == 3, "three notices")  # fmt: skip
    # ... the fault is logged once, not per message ...
    logged = [r for r in caplog.records if "could not be handled" in r.getMessage()]
    assert len(logged) == 1
    # ... and the operator finds every message in `nanoclaw messages failed`
    assert [r.text for r in list_unhandled(host.db)] == ["hello 0", "hello 1", "hello 2"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NANOCLAW_", "ANTHROPIC_"))}
    env.update(
        NANOCLAW_ENV_FILE="",
        NANOCLAW_DATA_DIR=str(host.settings.data_path),
        NANOCLAW_GROUPS_DIR=str(tmp_path / "groups"),
        NANOCLAW_LOGS_DIR=str(tmp_path / "logs"),
    )
    listed = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "nanoclaw.cli", "messages", "failed", "--json"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["kind"], r["text"], r["channel_type"]) for r in rows] == [
        ("unrouted", f"hello {n}", "fake") for n in range(3)
    ]
    assert all("NotADirectoryError" in r["error"] or "FileExistsError" in r["error"] for r in rows)
