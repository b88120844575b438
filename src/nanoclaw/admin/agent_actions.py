"""Agent actions that reach the admin service: destinations, wiring, mounts and restarts."""

# Each acts on the requesting agent's own group and runs only once the action gate allowed it
# (``permissions/agent_actions.py``: an admin asked, or an admin approved the card). The
# operation runs as that admin (``actor_of``), and the admin service checks the actor again,
# so an action allowed for this agent cannot reach further than its admin could.

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nanoclaw.admin.service import Actor, AdminService
from nanoclaw.contract.actions import (
    PAYLOADS,
    ActionName,
    ActionStatus,
    AddDestinationPayload,
    AddMountPayload,
    Payload,
    RemoveDestinationPayload,
    RestartAgentPayload,
    UnwireChatPayload,
    WireChatPayload,
)
from nanoclaw.db.models import AgentGroup, SessionRow
from nanoclaw.delivery.actions import ActionResult, PayloadHandler, SystemActions
from nanoclaw.errors import NanoclawError
from nanoclaw.executors import Executors
from nanoclaw.routing.modes import EngageMode
from nanoclaw.sessions.outbound_reader import OutboundRow

# The gated actions this module carries out (each also a runner tool of the same name).
ADMIN_ACTIONS: dict[ActionName, type[Payload]] = {
    name: PAYLOADS[name]
    for name in (
        ActionName.ADD_DESTINATION,
        ActionName.REMOVE_DESTINATION,
        ActionName.WIRE_CHAT,
        ActionName.UNWIRE_CHAT,
        ActionName.ADD_MOUNT,
        ActionName.RESTART_AGENT,
    )
}
DEFAULT_RESTART_NOTE = "You were restarted at your own request; your new configuration is active."

ActorOf = Callable[[SessionRow, OutboundRow], Actor]


class AdminActions:
    def __init__(self, *, executors: Executors, admin: AdminService, actor_of: ActorOf) -> None:
        self.executors = executors
        self.admin = admin
        self.actor_of = actor_of

    def install(self, actions: SystemActions) -> None:
        for name, payload in ADMIN_ACTIONS.items():
            actions.register_payload(name, payload, self._handler(name))

    def _handler(self, name: ActionName) -> PayloadHandler[Any]:
        op: Callable[[Actor, AgentGroup, Any], str] = getattr(self, f"_{name}")

        async def handler(session: SessionRow, row: OutboundRow, content: Payload) -> ActionResult:
            actor = await self.executors.central.run(self.actor_of, session, row)
            try:
                agent = await self.executors.central.run(self.admin.agent, session.agent_group_id)
                text = await self.executors.central.run(op, actor, agent, content)
            except NanoclawError as exc:
                return ActionResult(ActionStatus.ERROR, f"{name}: {exc}")
            return ActionResult(ActionStatus.OK, text)

        return handler

    def _add_destination(
        self, actor: Actor, agent: AgentGroup, content: AddDestinationPayload
    ) -> str:
        name = content.name
        target_agent, target_chat = content.agent, content.chat  # exactly one
        local = self.admin.add_destination(
            actor,
            agent,
            name,
            target_agent=self.admin.agent(target_agent) if target_agent else None,
            target_chat=self.admin.chat(target_chat) if target_chat else None,
        )
        return f'Destination "{local}" added: <message to="{local}">…</message> works now.'

    def _remove_destination(
        self, actor: Actor, agent: AgentGroup, content: RemoveDestinationPayload
    ) -> str:
        name = content.name
        self.admin.remove_destination(actor, agent, name)
        return f'Destination "{name}" removed.'

    def _wire_chat(self, actor: Actor, agent: AgentGroup, content: WireChatPayload) -> str:
        chat = self.admin.chat(content.chat, create=True)
        engage = EngageMode(content.engage or EngageMode.PATTERN)
        pattern = content.pattern.strip() if content.pattern else None
        if engage is EngageMode.PATTERN and pattern is None:
            pattern = "."
        self.admin.wire(actor, chat, agent, engage_mode=engage, engage_pattern=pattern)
        return f"Wired {chat.channel_type}/{chat.platform_id} to {agent.name} ({engage})."

    def _unwire_chat(self, actor: Actor, agent: AgentGroup, content: UnwireChatPayload) -> str:
        chat = self.admin.chat(content.chat)
        self.admin.unwire(actor, chat, agent)
        return f"Unwired {chat.channel_type}/{chat.platform_id} from {agent.name}."

    def _add_mount(self, actor: Actor, agent: AgentGroup, content: AddMountPayload) -> str:
        entry = self.admin.add_mount(
            actor,
            agent,
            content.host_path,
            container_path=content.container_path,
            read_write=bool(content.read_write),
        )
        mode = "read-only" if entry["readonly"] else "read-write"
        return (
            f"Mount recorded: {entry['hostPath']} at /workspace/extra/{entry['containerPath']}"
            f" ({mode}). It is mounted from your next start (restart_agent)."
        )

    def _restart_agent(self, actor: Actor, agent: AgentGroup, content: RestartAgentPayload) -> str:
        note = content.note.strip() if content.note else DEFAULT_RESTART_NOTE
        count = self.admin.restart_agent(actor, agent, note)
        return (
            f"Restart requested for {count} running session(s): each stops after its current"
            " turn and starts again with your note."
        )
