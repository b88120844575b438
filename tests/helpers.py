"""Test helpers that drive the system from outside: the real CLI client and the real repository."""

from __future__ import annotations

from pathlib import Path

from nanoclaw.channels.cli.client import Exchange, send_once
from nanoclaw.db.models import AgentGroup, MessagingGroup, Wiring
from nanoclaw.db.repository import Repository


async def say(
    socket_path: Path,
    text: str,
    *,
    chat: str = "local",
    sender: str = "alice",
    timeout: float = 20.0,  # noqa: ASYNC109 - passed on to the client's own deadline
) -> Exchange:
    return await send_once(socket_path, chat=chat, sender=sender, text=text, timeout_s=timeout)


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
