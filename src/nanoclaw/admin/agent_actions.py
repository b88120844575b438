"""Agent actions that reach the admin service: destinations, wiring, mounts and restarts.

Each acts on the requesting agent's own group and runs only once the action gate allowed it
(``permissions/agent_actions.py``: an admin asked, or an admin approved the card). The
operation runs as that admin (``actor_of``), and the admin service checks the actor again,
so an action allowed for this agent cannot reach further than its admin could.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nanoclaw.admin.service import Actor, AdminService
from nanoclaw.db.models import AgentGroup, SessionRow
from nanoclaw.delivery.actions import ActionResult, SystemActions
from nanoclaw.errors import NanoclawError, ValidationError
from nanoclaw.executors import Executors
from nanoclaw.sessions.outbound_reader import OutboundRow

# The gated actions this module carries out (each also a runner tool of the same name).
ADMIN_ACTIONS = (
    "add_destination",
    "remove_destination",
    "wire_chat",
    "unwire_chat",
    "add_mount",
    "restart_agent",
)
DEFAULT_RESTART_NOTE = "You were restarted at your own request; your new configuration is active."

ActorOf = Callable[[SessionRow, OutboundRow], Actor]


def _text(content: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = content.get(key)
    if value is None or value == "":
        if required:
            raise ValidationError(f"'{key}' is required", field=key)
        return None
    if not isinstance(value, str):
        raise ValidationError(f"'{key}' must be a string", field=key)
    return value.strip()


class AdminActions:
    def __init__(self, *, executors: Executors, admin: AdminService, actor_of: ActorOf) -> None:
        self.executors = executors
        self.admin = admin
        self.actor_of = actor_of

    def install(self, actions: SystemActions) -> None:
        for name in ADMIN_ACTIONS:
            actions.register(name, self._handler(name))

    def _handler(self, name: str) -> Any:
        op: Callable[[Actor, AgentGroup, dict[str, Any]], str] = getattr(self, f"_{name}")

        async def handler(session: SessionRow, row: OutboundRow) -> ActionResult:
            actor = await self.executors.central.run(self.actor_of, session, row)
            try:
                agent = await self.executors.central.run(self.admin.agent, session.agent_group_id)
                text = await self.executors.central.run(op, actor, agent, dict(row.content))
            except NanoclawError as exc:
                return ActionResult("error", f"{name}: {exc}")
            return ActionResult("ok", text)

        return handler

    def _add_destination(self, actor: Actor, agent: AgentGroup, content: dict[str, Any]) -> str:
        name = _text(content, "name")
        assert name is not None
        target_agent = _text(content, "agent", required=False)
        target_chat = _text(content, "chat", required=False)
        local = self.admin.add_destination(
            actor,
            agent,
            name,
            target_agent=self.admin.agent(target_agent) if target_agent else None,
            target_chat=self.admin.chat(target_chat) if target_chat else None,
        )
        return f'Destination "{local}" added: <message to="{local}">…</message> works now.'

    def _remove_destination(self, actor: Actor, agent: AgentGroup, content: dict[str, Any]) -> str:
        name = _text(content, "name")
        assert name is not None
        self.admin.remove_destination(actor, agent, name)
        return f'Destination "{name}" removed.'

    def _wire_chat(self, actor: Actor, agent: AgentGroup, content: dict[str, Any]) -> str:
        ref = _text(content, "chat")
        assert ref is not None
        chat = self.admin.chat(ref, create=True)
        engage = _text(content, "engage", required=False) or "pattern"
        pattern = _text(content, "pattern", required=False)
        if engage == "pattern" and pattern is None:
            pattern = "."
        self.admin.wire(actor, chat, agent, engage_mode=engage, engage_pattern=pattern)
        return f"Wired {chat.channel_type}/{chat.platform_id} to {agent.name} ({engage})."

    def _unwire_chat(self, actor: Actor, agent: AgentGroup, content: dict[str, Any]) -> str:
        ref = _text(content, "chat")
        assert ref is not None
        chat = self.admin.chat(ref)
        self.admin.unwire(actor, chat, agent)
        return f"Unwired {chat.channel_type}/{chat.platform_id} from {agent.name}."

    def _add_mount(self, actor: Actor, agent: AgentGroup, content: dict[str, Any]) -> str:
        host_path = _text(content, "host_path")
        assert host_path is not None
        entry = self.admin.add_mount(
            actor,
            agent,
            host_path,
            container_path=_text(content, "container_path", required=False),
            read_write=bool(content.get("read_write")),
        )
        mode = "read-only" if entry["readonly"] else "read-write"
        return (
            f"Mount recorded: {entry['hostPath']} at /workspace/extra/{entry['containerPath']}"
            f" ({mode}). It is mounted from your next start (restart_agent)."
        )

    def _restart_agent(self, actor: Actor, agent: AgentGroup, content: dict[str, Any]) -> str:
        note = _text(content, "note", required=False) or DEFAULT_RESTART_NOTE
        count = self.admin.restart_agent(actor, agent, note)
        return (
            f"Restart requested for {count} running session(s): each stops after its current"
            " turn and starts again with your note."
        )
