"""Host side of ``add_mcp_server`` and ``install_packages``: validated, then carried out.

A new MCP server is stored and started by the agent's next runner. Packages are fetched by the
host and built into the group's image layer (``nanoclaw.runtime.packages``); the agent is told
the outcome, failures included.

As for every gated action, who may ask is decided by the action gate before this runs (an admin
of the agent group at once, anyone else through an approval card).
"""

from __future__ import annotations

import logging

from nanoclaw.admin.extensions import Extensions
from nanoclaw.admin.service import Actor
from nanoclaw.db.models import SessionRow
from nanoclaw.delivery.actions import ActionResult, SystemActions
from nanoclaw.errors import NanoclawError, ValidationError
from nanoclaw.executors import Executors
from nanoclaw.runtime.packages import PackageInstaller, validate_request
from nanoclaw.sessions.outbound_reader import OutboundRow

log = logging.getLogger("nanoclaw.delivery.extensions")
APPROVED = Actor.operator()  # the gate has authorized the request by the time a handler runs


class ExtensionActions:
    def __init__(
        self, *, executors: Executors, extensions: Extensions, installer: PackageInstaller
    ) -> None:
        self.executors = executors
        self.extensions = extensions
        self.installer = installer

    def install(self, actions: SystemActions) -> None:
        actions.register("add_mcp_server", self.add_mcp_server)
        actions.register("install_packages", self.install_packages)

    async def install_packages(self, session: SessionRow, row: OutboundRow) -> ActionResult:
        """Fetch and install the group's packages (its earlier ones and these); tell the outcome."""
        try:
            request = validate_request(row.content.get("pip"), row.content.get("apt"))
        except ValidationError as exc:
            return ActionResult("error", f"install_packages: {exc}")
        agent_id = session.agent_group_id
        central = self.executors.central
        wanted = (await central.run(self.extensions.package_request, agent_id)).merged(request)
        try:
            cfg = await central.run(self.extensions.repo.container_config, agent_id)
            runtime_name = cfg.runtime
            outcome = await self.executors.blocking.run(
                lambda: self.installer.install(agent_id, wanted, runtime_name=runtime_name)
            )
        except NanoclawError as exc:
            log.warning("packages for %s not installed: %s", agent_id, exc)
            await self.executors.central.run(
                self.extensions.record_packages,
                agent_id,
                wanted,
                image=None,
                ok=False,
                message=str(exc),
            )
            return ActionResult("error", f"install_packages: not installed: {exc}")
        await self.executors.central.run(
            self.extensions.record_packages,
            agent_id,
            wanted,
            image=outcome.image,
            ok=True,
            message=outcome.message,
        )
        log.info("packages for %s installed: %s", agent_id, outcome.message)
        return ActionResult("ok", outcome.message)

    async def add_mcp_server(self, session: SessionRow, row: OutboundRow) -> ActionResult:
        content = row.content
        try:
            agent = await self.executors.central.run(
                self.extensions.repo.agent_group, session.agent_group_id
            )
            spec = await self.executors.central.run(
                lambda: self.extensions.add_mcp_server(
                    APPROVED,
                    agent,
                    name=str(content.get("name", "")),
                    command=str(content.get("command", "")),
                    args=[str(a) for a in content.get("args") or []],
                    env={str(k): str(v) for k, v in (content.get("env") or {}).items()},
                )
            )
        except NanoclawError as exc:
            return ActionResult("error", f"add_mcp_server: {exc}")
        return ActionResult(
            "ok",
            f"MCP server {spec.name} added. Its tools (mcp__{spec.name}__…) are available from "
            "your next start (ask for restart_agent, or wait for the idle timeout).",
        )
