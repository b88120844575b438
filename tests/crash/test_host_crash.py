"""Crash tests with real processes and real signals: SIGKILL the host mid-burst, restart it.

Invariant 8: every message is answered, none is lost, and a reply is re-sent at most once
per crash (duplicates ≤ number of kills).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from nanoclaw.contract.timeutil import to_iso, utc_now
from nanoclaw.db.repository import Repository
from nanoclaw.sessions.service import SessionService
from nanoclaw.sessions.store import InboundMessage, SessionStore
from nanoclaw.settings import Settings
from tests.crash.harness import HostProcess, Observers, send_until_accepted
from tests.helpers import install_with_chats

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CHATS = [f"c{i}" for i in range(5)]
MESSAGES = 100
MAX_MESSAGES = 999  # the ids and TOKEN have three digits
KILLS = 5
TOKEN = re.compile(r"msg-\d{3}")


def _setup_install(settings: Settings) -> Repository:
    return install_with_chats(settings, CHATS)


async def _wait_for(predicate: object, within_s: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not predicate():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_sigkill_host_during_a_burst_loses_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    _setup_install(settings)
    host = HostProcess(settings, log_dir=tmp_path)
    observers = Observers(settings.cli_socket, CHATS)
    rng = random.Random(20261121)
    host.start()
    observers.start()
    kills = 0
    try:
        await observers.all_ready(within_s=30)
        messages: list[tuple[str, str, str]] = []  # as accepted
        kills_done = asyncio.Event()

        async def burst() -> None:
            # At least MESSAGES, and on until the last kill: a fast host must not answer the
            # whole burst before the kills are over (it then starts no runner to kill with).
            i = 0
            while i < MESSAGES or (not kills_done.is_set() and i < MAX_MESSAGES):
                message_id, chat, text = f"m{i:03d}", CHATS[i % len(CHATS)], f"msg-{i:03d}"
                await send_until_accepted(
                    settings.cli_socket, chat=chat, message_id=message_id, text=text, gate=observers
                )
                messages.append((message_id, chat, text))
                i += 1
                await asyncio.sleep(rng.uniform(0.0, 0.03))

        sender = asyncio.create_task(burst())
        while kills < KILLS:
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            # Killed with a runner alive (on a loaded machine a host can be killed before its
            # first runner starts): the next host must find and stop what this one left.
            await _wait_for(lambda: bool(host.runner_pids()), 30, "a runner to be running")
            # One runner deep in a long turn (frozen: it cannot notice its host die). An idle
            # orphan sees its parent gone within its poll interval and exits, on a slow machine
            # before the next host has started; this one is still there for it to stop.
            with contextlib.suppress(ProcessLookupError):
                os.kill(rng.choice(sorted(host.runner_pids())), signal.SIGSTOP)
            host.kill()
            kills += 1
            observers.not_ready()
            host.start()
            await observers.all_ready(within_s=30)
        kills_done.set()
        await asyncio.wait_for(sender, timeout=120)

        expected = {text for _, _, text in messages}

        def seen() -> Counter[str]:
            counts: Counter[str] = Counter()
            for replies in observers.replies.values():
                for reply in replies:
                    counts.update(TOKEN.findall(reply))
            return counts

        await _wait_for(lambda: expected <= set(seen()), 120, "every message to be answered")
        await asyncio.sleep(1.0)  # let any late duplicate arrive before counting
        counts = seen()
        missing = expected - set(counts)
        duplicates = sum(n - 1 for n in counts.values() if n > 1)
        print(
            f"kills={kills} replies={sum(len(r) for r in observers.replies.values())} "
            f"duplicates={duplicates}"
        )
        assert not missing, f"unanswered: {sorted(missing)}"
        assert duplicates <= kills, f"{duplicates} duplicate replies after {kills} kills: {counts}"
        # Runners of a killed host outlive it; the next host stopped them before starting its own.
        assert "left by a previous host" in host.logs(tail_chars=None)
        # Each reply answered the chat it came from.
        for chat, replies in observers.replies.items():
            for reply in replies:
                for token in TOKEN.findall(reply):
                    assert CHATS[int(token[4:]) % len(CHATS)] == chat
    except BaseException:
        print(host.logs())
        raise
    finally:
        await observers.close()
        host.stop()


async def test_recurring_task_due_while_host_was_down_fires_once(
    settings: Settings, tmp_path: Path
) -> None:
    repo = _setup_install(settings)
    host = HostProcess(settings, log_dir=tmp_path)
    observers = Observers(settings.cli_socket, ["c0"])
    host.start()
    observers.start()
    try:
        await observers.all_ready(within_s=30)
        host.kill()  # the machine goes down
        observers.not_ready()
        # While it is down: an hourly task whose last three times passed.
        store = SessionStore(sessions_root=settings.sessions_path)
        service = SessionService(repo=repo, store=store)
        mg = repo.messaging_group("cli", "c0")
        assert mg is not None
        _session, layout = service.resolve(
            agent_group_id=repo.agent_group("Andy").id,
            messaging_group_id=mg.id,
            thread_id=None,
            mode="shared",
        )
        now = utc_now()
        minute = (now.minute + 30) % 60  # never within the test's run time
        store.insert_messages(
            layout,
            [
                InboundMessage(
                    id="task-brief",
                    kind="task",
                    content={"prompt": "morning brief"},
                    channel_type="cli",
                    platform_id="c0",
                    process_after=to_iso(now - timedelta(hours=3)),
                    recurrence=f"{minute} * * * *",
                    recurrence_tz="UTC",
                )
            ],
        )
        host.start()
        await observers.all_ready(within_s=30)
        await _wait_for(
            lambda: any("morning brief" in r for r in observers.replies["c0"]), 30, "the task"
        )
        await asyncio.sleep(3.0)  # a second (wrong) catch-up run would show up by now
        fired = [r for r in observers.replies["c0"] if "morning brief" in r]
        assert len(fired) == 1, fired
        # The series has exactly one pending occurrence, in the future.
        from nanoclaw.scheduling.tasks import list_tasks

        live = list_tasks(store, layout)
        assert len(live) == 1
        assert live[0].series_id == "task-brief"
        assert live[0].process_after is not None and live[0].process_after > to_iso(utc_now())
    except BaseException:
        print(host.logs())
        raise
    finally:
        await observers.close()
        host.stop()
