"""Host side of ``create_agent`` and ``install_packages``: validated, then carried out.

Who may ask is not decided here: the one permission check of every action is the
authorizer installed on ``SystemActions`` (``set_authorizer``; the permissions module gates
both actions behind an admin or an approval card). These handlers run only once allowed.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from nanoclaw.admin.service import create_agent_files
from nanoclaw.contract.confined import replace_file
from nanoclaw.db.models import ContainerConfig, SessionRow
from nanoclaw.db.repository import Repository, normalize_destination_name
from nanoclaw.delivery.actions import ActionResult, SystemActions
from nanoclaw.errors import NanoclawError, ValidationError
from nanoclaw.sessions.outbound_reader import OutboundRow
from nanoclaw.sessions.paths import safe_name
from nanoclaw.sessions.service import SessionService
from nanoclaw.settings import Settings

APT_RE = re.compile(r"^[a-z0-9][a-z0-9._+-]*$")
MAX_PACKAGES = 20
MAX_INSTRUCTIONS_CHARS = 20_000
PARENT_DESTINATION = "parent"


def validate_apt_packages(raw: Any) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise ValidationError("'apt' must be a list of package names", field="apt")
    if not 1 <= len(raw) <= MAX_PACKAGES:
        raise ValidationError(f"name 1 to {MAX_PACKAGES} packages", field="apt")
    bad = [p for p in raw if not APT_RE.match(p)]
    if bad:
        raise ValidationError(f"invalid package names: {', '.join(bad)}", field="apt")
    return list(dict.fromkeys(raw))


class AgentActions:
    def __init__(self, *, settings: Settings, repo: Repository, sessions: SessionService) -> None:
        self.settings = settings
        self.repo = repo
        self.sessions = sessions

    def install(self, actions: SystemActions) -> None:
        actions.register("create_agent", self.create_agent)
        actions.register("install_packages", self.install_packages)

    async def create_agent(self, session: SessionRow, row: OutboundRow) -> ActionResult:
        try:
            text = await asyncio.to_thread(self._create_agent, session, row.content)
        except NanoclawError as exc:
            return ActionResult("error", f"create_agent: {exc}")
        return ActionResult("ok", text)

    def _create_agent(self, session: SessionRow, content: dict[str, Any]) -> str:
        name = content.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ValidationError("'name' is required", field="name")
        name = name.strip()
        instructions = content.get("instructions") or ""
        if not isinstance(instructions, str) or len(instructions) > MAX_INSTRUCTIONS_CHARS:
            raise ValidationError("'instructions' must be text", field="instructions")
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

    async def install_packages(self, session: SessionRow, row: OutboundRow) -> ActionResult:
        try:
            packages = validate_apt_packages(row.content.get("apt"))
        except ValidationError as exc:
            return ActionResult("error", f"install_packages: {exc}")
        added = await asyncio.to_thread(self._record_packages, session.agent_group_id, packages)
        listed = ", ".join(added) if added else "nothing new"
        return ActionResult(
            "ok",
            f"Packages recorded for this agent ({listed}), but not installed: the agent image"
            " does not add per-agent packages yet. Tell the user an operator must add them.",
        )

    def _record_packages(self, agent_group_id: str, packages: list[str]) -> list[str]:
        with self.repo.db.session() as s:
            cfg = s.get(ContainerConfig, agent_group_id)
            if cfg is None:
                cfg = ContainerConfig(agent_group_id=agent_group_id)
                s.add(cfg)
            try:
                current = [str(p) for p in json.loads(cfg.packages_apt or "[]")]
            except ValueError:
                current = []
            added = [p for p in packages if p not in current]
            cfg.packages_apt = json.dumps(current + added)
        return added
