"""A FIFO or symlink outbound.db quarantines its session alone; the others keep delivering."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from nanoclaw.cli.status import gather
from nanoclaw.db.models import SessionRow
from nanoclaw.host import Host
from tests.helpers import make_agent, say, texts, wire_chat

MOCK = "(mock model, no API key configured) heard: "


def session_of(host: Host, chat: str) -> SessionRow:
    mg = host.repo.messaging_group("cli", chat)
    assert mg is not None
    (session,) = [s for s in host.repo.sessions() if s.messaging_group_id == mg.id]
    return session


def statuses(db: Path) -> dict[str, str]:
    conn = sqlite3.connect(db)
    try:
        return {
            str(text): str(status)
            for text, status in conn.execute(
                "SELECT json_extract(content, '$.text'), status FROM messages_in"
            )
        }
    finally:
        conn.close()


async def wait_until(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Wait for a state (the runner's exit is processed by its monitor task)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        assert loop.time() < deadline, "state not reached in time"
        await asyncio.sleep(0.05)


def plant(path: Path, kind: str, tmp: Path) -> None:
    """What the agent does from inside its sandbox: swap outbound.db for a FIFO or a link."""
    planted = path.with_name("planted")
    if kind == "fifo":
        os.mkfifo(planted)
    else:
        victim = tmp / "victim.db"
        sqlite3.connect(victim).close()
        planted.symlink_to(victim)
    planted.rename(path)


@pytest.mark.parametrize("kind", ["fifo", "symlink"])
async def test_a_planted_outbound_db_quarantines_only_its_session(
    host: Host, tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    andy = make_agent(host.repo, "Andy")
    wire_chat(host.repo, andy, "evil")
    wire_chat(host.repo, andy, "good")
    sock = host.settings.cli_socket
    assert texts(await say(sock, "hi", chat="evil")) == [f"Andy {MOCK}hi"]
    assert texts(await say(sock, "hi", chat="good")) == [f"Andy {MOCK}hi"]
    evil = session_of(host, "evil")
    layout = host.sessions.layout(evil)

    caplog.set_level(logging.INFO, logger="nanoclaw")
    plant(layout.outbound_db, kind, tmp_path)

    # The session's next message ends failed, and its sender is told why.
    exchange = await say(sock, "are you there?", chat="evil")
    assert len(exchange.replies) == 1
    assert "unsafe file" in texts(exchange)[0]
    assert exchange.failed  # the client is told the turn failed, not that it was answered
    assert statuses(layout.inbound_db)["are you there?"] == "failed"
    assert host.quarantine.is_quarantined(evil.id)
    await wait_until(lambda: evil.id not in host.supervisor.running_sessions())

    # Every other session goes on as before, several turns in a row.
    for n in range(3):
        assert texts(await say(sock, f"still here {n}?", chat="good")) == [
            f"Andy {MOCK}still here {n}?"
        ]
    # A later message to the quarantined session also ends failed with a notice.
    again = await say(sock, "hello again", chat="evil")
    assert "unsafe file" in texts(again)[0] and again.failed
    assert statuses(layout.inbound_db)["hello again"] == "failed"

    # One log line with the cause, however many times the session was touched.
    lines = [r.getMessage() for r in caplog.records if "quarantined:" in r.getMessage()]
    assert len(lines) == 1 and evil.id in lines[0]
    assert ("FIFO" if kind == "fifo" else "symbolic link") in lines[0]

    # The operator sees it in `nanoclaw status`.
    shown = await asyncio.to_thread(gather, host.settings)
    assert [q["session_id"] for q in shown["quarantined"]] == [evil.id]
