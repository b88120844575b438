"""Host side of ``create_agent``: its parsed payload carried out."""

# Who may ask is not decided here: the one permission check of every action is the
# authorizer installed on ``SystemActions`` (``set_authorizer``; the permissions module gates
# both actions behind an admin or an approval card). These handlers run only once allowed.

from __future__ import annotations

from nanoclaw.admin.service import create_agent_files
from nanoclaw.contract.actions import ActionName, ActionStatus, CreateAgentPayload
from nanoclaw.contract.confined import replace_file
from nanoclaw.db.models import ContainerConfig, SessionRow
from nanoclaw.db.repository import Repository, normalize_destination_name
from nanoclaw.delivery.actions import ActionResult, SystemActions
from nanoclaw.errors import NanoclawError, ValidationError
from nanoclaw.executors import Executors
from nanoclaw.sessions.outbound_reader import OutboundRow
from nanoclaw.sessions.paths import safe_name
from nanoclaw.sessions.service import SessionService
from nanoclaw.settings import Settings

PARENT_DESTINATION = "parent"


class AgentActions:
    def __init__(
        self,
        *,
        executors: Executors,
        settings: Settings,
        repo: Repository,
        sessions: SessionService,
    ) -> None:
        self.executors = executors
        self.settings = settings
        self.repo = repo
        self.sessions = sessions

    def install(self, actions: SystemActions) -> None:
        actions.register_payload(ActionName.CREATE_AGENT, CreateAgentPayload, self.create_agent)

    async def create_agent(
        self, session: SessionRow, row: OutboundRow, payload: CreateAgentPayload
    ) -> ActionResult:
        try:
            text = await self.executors.central.run(self._create_agent, session, payload)
        except NanoclawError as exc:
            return ActionResult(ActionStatus.ERROR, f"{ActionName.CREATE_AGENT}: {exc}")
        return ActionResult(ActionStatus.OK, text)

    def _create_agent(self, session: SessionRow, payload: CreateAgentPayload) -> str:
        name = payload.name  # trimmed, 1 to 64 characters
        instructions = payload.instructions or ""
        creator = session.agent_group_id
        local = normalize_destination_name(name)
        if local == PARENT_DESTINATION or local in {
            d.local_name for d in self.repo.destinations(creator)
        }:
            raise ValidationError(f"you already have a destination named {local!r}", field="name")
        group = create_agent_files(self.repo, self.settings.groups_path, name)
        if instructions:
            replace_file(
                self.settings.groups_path,
                safe_name(group.folder),
                "CLAUDE.local.md",
                data=(instructions.strip() + "\n").encode("utf-8"),
            )
        self._inherit_model(creator, group.id)
        self.repo.add_agent_destination(agent_group_id=creator, name=local, target_id=group.id)
        self.repo.add_agent_destination(
            agent_group_id=group.id, name=PARENT_DESTINATION, target_id=creator
        )
        self.sessions.project_agent(creator)  # the new destination, usable at once
        return (
            f'Agent "{name}" created. You can now message it with '
            f'<message to="{local}">...</message>.'
        )

    def _inherit_model(self, parent_id: str, child_id: str) -> None:
        """The child runs on its parent's provider and model unless configured otherwise."""
        parent = self.repo.container_config(parent_id)
        with self.repo.db.session() as s:
            child = s.get(ContainerConfig, child_id)
            if child is not None:
                child.provider = parent.provider
                child.model = parent.model
