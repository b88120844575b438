"""Test helpers that drive the system from outside: the real CLI client and the real repository."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from nanoclaw.channels.cli.client import Exchange, send_once
from nanoclaw.contract.layout import SessionLayout
from nanoclaw.db.central import CentralDB
from nanoclaw.db.models import AgentGroup, MessagingGroup, Wiring
from nanoclaw.db.repository import Repository
from nanoclaw.executors import Executors
from nanoclaw.sessions.service import SessionService
from nanoclaw.settings import Settings

_T = TypeVar("_T")


async def say(
    socket_path: Path,
    text: str,
    *,
    chat: str = "local",
    sender: str = "alice",
    timeout: float = 20.0,  # noqa: ASYNC109 - passed on to the client's own deadline
) -> Exchange:
    return await send_once(socket_path, chat=chat, sender=sender, text=text, timeout_s=timeout)


@functools.cache
def shared_executors() -> Executors:
    """One set of executors for components a test builds without a host (bounded threads)."""
    return Executors.build()


def texts(exchange: Exchange) -> list[str]:
    return [str(r.get("text")) for r in exchange.replies]


def make_agent(repo: Repository, name: str, folder: str | None = None) -> AgentGroup:
    return repo.create_agent_group(name=name, folder=folder or name.lower())


def wire_chat(
    repo: Repository,
    agent: AgentGroup,
    chat: str,
    *,
    channel: str = "cli",
    policy: str = "public",
    is_group: bool = False,
    **wiring: object,
) -> tuple[MessagingGroup, Wiring]:
    mg = repo.ensure_messaging_group(
        channel_type=channel,
        platform_id=chat,
        name=chat,
        is_group=is_group,
        unknown_sender_policy=policy,
    )
    defaults: dict[str, object] = {"engage_mode": "pattern", "engage_pattern": "."}
    defaults.update(wiring)
    w = repo.create_wiring(messaging_group_id=mg.id, agent_group_id=agent.id, **defaults)  # type: ignore[arg-type]
    return mg, w


def install_with_chats(settings: Settings, chats: list[str]) -> Repository:
    """An install on disk (central DB migrated) with agent Andy wired to each CLI chat: what a
    test that starts a real ``nanoclaw run`` needs first."""
    settings.data_path.mkdir(parents=True, exist_ok=True)
    db = CentralDB(path=settings.central_db_path, migrations_root=settings.migrations_path)
    db.migrate()
    repo = Repository(db)
    agent = make_agent(repo, "Andy")
    for chat in chats:
        wire_chat(repo, agent, chat)
    return repo


def agent_sessions(
    repo: Repository, sessions: SessionService, *, chats: int, agent: str = "Andy"
) -> list[SessionLayout]:
    """One agent wired to ``chat0``…``chat<n-1>``, with a session made in each; their layouts."""
    group = make_agent(repo, agent)
    layouts = []
    for n in range(chats):
        mg, _ = wire_chat(repo, group, f"chat{n}")
        layouts.append(
            sessions.resolve(
                agent_group_id=group.id, messaging_group_id=mg.id, thread_id=None, mode="shared"
            )[1]
        )
    return layouts


async def wait_for_state(check: Callable[[], _T], timeout_s: float = 15.0) -> _T:
    """Poll ``check`` (off the event loop) until it returns something truthy: a state, not a sleep."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"state not reached within {timeout_s:g} s (last: {value!r})")
        await asyncio.sleep(0.02)


async def until(predicate: Callable[[], bool], *, within_s: float = 15.0) -> None:
    """Like ``wait_for_state`` for state on the event loop itself (adapter state: no thread)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not predicate():
        assert loop.time() < deadline, f"state not reached within {within_s}s"
        await asyncio.sleep(0.02)


def until_sync(predicate: Callable[[], bool], *, within_s: float = 15.0) -> None:
    """``until`` for a test without an event loop (state other threads change)."""
    deadline = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < deadline, f"state not reached within {within_s}s"
        time.sleep(0.005)


def proc_status(pid: int, tid: int | None = None) -> dict[str, str]:
    """A thread's ``/proc/<pid>/task/<tid>/status`` fields (the process's main thread by
    default), as Linux reports them."""
    fields: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/task/{tid or pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return fields


def allowed_cpus(pid: int, tid: int | None = None) -> frozenset[int]:
    """The CPUs a thread may run on (``Cpus_allowed_list``)."""
    cpus: set[int] = set()
    for part in proc_status(pid, tid)["Cpus_allowed_list"].split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return frozenset(cpus)
