"""Host side of ``add_mcp_server`` and ``install_packages``: their parsed payloads carried out."""

# A new MCP server is stored and started by the agent's next runner. Packages are fetched by the
# host and built into the group's image layer (``nanoclaw.runtime.packages``); the agent is told
# the outcome, failures included.
#
# As for every gated action, who may ask is decided by the action gate before this runs (an admin
# of the agent group at once, anyone else through an approval card).

from __future__ import annotations

import logging

from nanoclaw.admin.extensions import Extensions
from nanoclaw.admin.service import Actor
from nanoclaw.contract.actions import (
    ActionName,
    ActionStatus,
    AddMcpServerPayload,
    InstallPackagesPayload,
)
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
        actions.register_payload(
            ActionName.ADD_MCP_SERVER, AddMcpServerPayload, self.add_mcp_server
        )
        actions.register_payload(
            ActionName.INSTALL_PACKAGES, InstallPackagesPayload, self.install_packages
        )

    async def install_packages(
        self, session: SessionRow, row: OutboundRow, payload: InstallPackagesPayload
    ) -> ActionResult:
        """Fetch and install the group's packages (its earlier ones and these); tell the outcome."""
        try:
            request = validate_request(payload.pip or [], payload.apt or [])
        except ValidationError as exc:
            return ActionResult(ActionStatus.ERROR, f"{ActionName.INSTALL_PACKAGES}: {exc}")
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
            return ActionResult(
                ActionStatus.ERROR, f"{ActionName.INSTALL_PACKAGES}: not installed: {exc}"
            )
        await self.executors.central.run(
            self.extensions.record_packages,
            agent_id,
            wanted,
            image=outcome.image,
            ok=True,
            message=outcome.message,
        )
        log.info("packages for %s installed: %s", agent_id, outcome.message)
        return ActionResult(ActionStatus.OK, outcome.message)

    async def add_mcp_server(
        self, session: SessionRow, row: OutboundRow, payload: AddMcpServerPayload
    ) -> ActionResult:
        try:
            agent = await self.executors.central.run(
                self.extensions.repo.agent_group, session.agent_group_id
            )
            spec = await self.executors.central.run(
                lambda: self.extensions.add_mcp_server(
                    APPROVED,
                    agent,
                    name=payload.name,
                    command=payload.command,
                    args=list(payload.args or []),
                    env=dict(payload.env or {}),
                )
            )
        except NanoclawError as exc:
            return ActionResult(ActionStatus.ERROR, f"{ActionName.ADD_MCP_SERVER}: {exc}")
        return ActionResult(
            ActionStatus.OK,
            f"MCP server {spec.name} added. Its tools (mcp__{spec.name}__…) are available from "
            "your next start (ask for restart_agent, or wait for the idle timeout).",
        )
