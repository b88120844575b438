"""Host side of ``add_mcp_server``: validated, then stored; the agent's next runner starts the server.

As for every gated action, who may ask is decided by the action gate before this runs (an admin
of the agent group at once, anyone else through an approval card).
"""

from __future__ import annotations

import asyncio

from nanoclaw.admin.extensions import Extensions
from nanoclaw.admin.service import Actor
from nanoclaw.db.models import SessionRow
from nanoclaw.delivery.actions import ActionResult, SystemActions
from nanoclaw.errors import NanoclawError
from nanoclaw.sessions.outbound_reader import OutboundRow

APPROVED = Actor.operator()  # the gate has authorized the request by the time a handler runs


class ExtensionActions:
    def __init__(self, *, extensions: Extensions) -> None:
        self.extensions = extensions

    def install(self, actions: SystemActions) -> None:
        actions.register("add_mcp_server", self.add_mcp_server)

    async def add_mcp_server(self, session: SessionRow, row: OutboundRow) -> ActionResult:
        content = row.content
        try:
            agent = await asyncio.to_thread(self.extensions.repo.agent_group, session.agent_group_id)
            spec = await asyncio.to_thread(
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
