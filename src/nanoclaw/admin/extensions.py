"""An agent's extensions: MCP servers, skills and installed packages, for the CLI, chat and agents.

Writes check the actor as every admin operation does (operator, owner, global admin, or an admin
of that agent group); agents reach these only through the approval-gated actions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nanoclaw.admin.service import Actor, Table, deny
from nanoclaw.contract.mcp import (
    McpConfigError,
    McpServerSpec,
    dump_servers,
    parse_servers,
    validate_server,
)
from nanoclaw.contract.skills import SKILLS_DIR, Skill, list_skills
from nanoclaw.contract.timeutil import now_iso
from nanoclaw.db.models import AgentGroup, ContainerConfig
from nanoclaw.db.repository import Repository
from nanoclaw.errors import ValidationError
from nanoclaw.runtime.packages import PackageRequest


class Extensions:
    def __init__(self, *, repo: Repository, groups_path: Path) -> None:
        self.repo = repo
        self.groups_path = groups_path

    # -- MCP servers ---------------------------------------------------------------------------
    def mcp_servers(self, actor: Actor, agent: AgentGroup) -> list[McpServerSpec]:
        if not actor.can_read(agent.id):
            raise deny(actor, "see the MCP servers of", f"agent {agent.name}")
        return parse_servers(self._config(agent).mcp_servers)

    def mcp_table(self, actor: Actor, agent: AgentGroup) -> Table:
        table = Table(["name", "command", "args", "env"], title=f"MCP servers of {agent.name}")
        for spec in self.mcp_servers(actor, agent):
            table.rows.append(
                {
                    "name": spec.name,
                    "command": spec.command,
                    "args": list(spec.args),
                    "env": sorted(spec.env),
                }
            )
        return table

    def add_mcp_server(
        self,
        actor: Actor,
        agent: AgentGroup,
        *,
        name: str,
        command: str,
        args: list[str] | tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> McpServerSpec:
        """Add or replace a server (effective on the agent's next runner start)."""
        if not actor.can_write(agent.id):
            raise deny(actor, "add an MCP server to", f"agent {agent.name}")
        try:
            spec = validate_server(name, command, list(args), env or {})
        except McpConfigError as exc:
            raise ValidationError(str(exc), field="mcp_server") from exc
        current = [s for s in parse_servers(self._config(agent).mcp_servers) if s.name != name]
        try:
            stored = dump_servers([*current, spec])
            parse_servers(stored)
        except McpConfigError as exc:
            raise ValidationError(str(exc), field="mcp_server") from exc
        self._update(agent, mcp_servers=stored)
        return spec

    def remove_mcp_server(self, actor: Actor, agent: AgentGroup, name: str) -> bool:
        if not actor.can_write(agent.id):
            raise deny(actor, "remove an MCP server of", f"agent {agent.name}")
        current = parse_servers(self._config(agent).mcp_servers)
        kept = [s for s in current if s.name != name]
        if len(kept) == len(current):
            return False
        self._update(agent, mcp_servers=dump_servers(kept))
        return True

    # -- skills --------------------------------------------------------------------------------
    def skills(self, actor: Actor, agent: AgentGroup) -> list[Skill]:
        if not actor.can_read(agent.id):
            raise deny(actor, "see the skills of", f"agent {agent.name}")
        groups = self.groups_path
        return list_skills(groups / agent.folder / SKILLS_DIR, groups / "global" / SKILLS_DIR)

    # -- packages ------------------------------------------------------------------------------
    def packages(self, actor: Actor, agent: AgentGroup) -> dict[str, Any]:
        if not actor.can_read(agent.id):
            raise deny(actor, "see the packages of", f"agent {agent.name}")
        cfg = self._config(agent)
        return {
            "pip": json.loads(cfg.packages_pip or "[]"),
            "apt": json.loads(cfg.packages_apt or "[]"),
            "image": cfg.image_tag,
            "status": json.loads(cfg.packages_status) if cfg.packages_status else None,
        }

    def package_request(self, agent_group_id: str) -> PackageRequest:
        cfg = self.repo.container_config(agent_group_id)
        return PackageRequest(
            pip=tuple(json.loads(cfg.packages_pip or "[]")),
            apt=tuple(json.loads(cfg.packages_apt or "[]")),
        )

    def record_packages(
        self,
        agent_group_id: str,
        request: PackageRequest,
        *,
        image: str | None,
        ok: bool,
        message: str,
    ) -> None:
        """Store the package set and the build's outcome; a built layer becomes the group's image."""
        values: dict[str, Any] = {
            "packages_status": json.dumps({"ok": ok, "message": message, "at": now_iso()}),
        }
        if ok:
            values["packages_pip"] = json.dumps(list(request.pip))
            values["packages_apt"] = json.dumps(list(request.apt))
            if image is not None:
                values["image_tag"] = image
        agent = self.repo.agent_group(agent_group_id)
        self._update(agent, **values)

    # -- storage -------------------------------------------------------------------------------
    def _config(self, agent: AgentGroup) -> ContainerConfig:
        return self.repo.container_config(agent.id)

    def _update(self, agent: AgentGroup, **values: Any) -> None:
        with self.repo.db.session() as s:
            cfg = s.get(ContainerConfig, agent.id)
            if cfg is None:
                cfg = ContainerConfig(agent_group_id=agent.id)
                s.add(cfg)
            for key, value in values.items():
                setattr(cfg, key, value)
