"""Chat commands for an agent's extensions: ``/mcp`` and ``/skills`` (owners and admins)."""

from __future__ import annotations

import shlex

from nanoclaw.admin.commands import ChatCommands, CommandContext, UsageError
from nanoclaw.admin.extensions import Extensions

MCP_USAGE = "/mcp <agent> [list | add <name> <command> [args…] | remove <name>]"


def register_extension_commands(commands: ChatCommands, extensions: Extensions) -> None:
    async def mcp(ctx: CommandContext) -> str:
        if not ctx.args:
            raise UsageError(f"Usage: {MCP_USAGE}")
        agent = await commands.agent(ctx.args[0])
        verb, rest = (ctx.args[1] if len(ctx.args) > 1 else "list"), ctx.args[2:]
        if verb == "list":
            table = await commands.executors.central.run(extensions.mcp_table, ctx.actor, agent)
            return table.as_text()
        if verb == "add" and len(rest) >= 2:
            spec = await commands.executors.central.run(
                lambda: extensions.add_mcp_server(
                    ctx.actor, agent, name=rest[0], command=rest[1], args=rest[2:]
                )
            )
            argv = " ".join(shlex.quote(a) for a in (spec.command, *spec.args))
            return f"MCP server {spec.name} ({argv}) added to {agent.name}; it starts with its next runner."
        if verb == "remove" and len(rest) == 1:
            removed = await commands.executors.central.run(
                extensions.remove_mcp_server, ctx.actor, agent, rest[0]
            )
            return (
                f"MCP server {rest[0]} removed."
                if removed
                else f"{agent.name} has no MCP server {rest[0]}."
            )
        raise UsageError(f"Usage: {MCP_USAGE}")

    async def skills(ctx: CommandContext) -> str:
        if len(ctx.args) != 1:
            raise UsageError("Usage: /skills <agent>")
        agent = await commands.agent(ctx.args[0])
        found = await commands.executors.central.run(extensions.skills, ctx.actor, agent)
        if not found:
            return f"{agent.name} has no skills (add groups/{agent.folder}/skills/<name>/SKILL.md)."
        return "\n".join(
            f"• {s.name}: {s.description}{' (shared)' if s.shared else ''}" for s in found
        )

    commands.register("/mcp", MCP_USAGE, "An agent's MCP servers: list, add, remove.", mcp)
    commands.register("/skills", "/skills <agent>", "The skills an agent can read.", skills)
