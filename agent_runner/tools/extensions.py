"""The agent's requests to extend itself: an MCP server, packages (both need an admin's approval)."""

from __future__ import annotations

from typing import Any

from agent_runner.tools.base import (
    FunctionTool,
    ToolEnv,
    ToolError,
    ToolOutput,
    optional_str,
    require_str,
)
from agent_runner.tools.nanoclaw import _prop, _schema, request_and_wait
from nanoclaw.contract.mcp import McpConfigError, validate_server


class AddMcpServer(FunctionTool):
    name = "add_mcp_server"
    description = (
        "Ask to add a stdio MCP server to yourself (its tools appear as mcp__<name>__<tool> from"
        " your next start). Needs an admin's approval. The server's program must already be in"
        " your sandbox (installed packages or files in your folder): the sandbox has no network."
        " Its env may not hold secrets."
    )
    schema = _schema(
        ["name", "command"],
        name=_prop("string", "Server name: lowercase letters, digits, _ or -."),
        command=_prop("string", "The program to run, e.g. python."),
        args={"type": "array", "items": {"type": "string"}, "description": "Its arguments."},
        env={
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Environment variables (no secrets).",
        },
        reason=_prop("string", "Why you need it."),
    )

    async def run(self, tool_input: dict[str, Any], env: ToolEnv) -> ToolOutput:
        name = require_str(tool_input, "name")
        command = require_str(tool_input, "command")
        args = tool_input.get("args") or []
        server_env = tool_input.get("env") or {}
        try:
            spec = validate_server(name, command, args, server_env)
        except McpConfigError as exc:
            raise ToolError(str(exc)) from exc
        payload: dict[str, Any] = {"name": spec.name, **spec.to_json()}
        reason = optional_str(tool_input, "reason")
        if reason:
            payload["reason"] = reason
        return await request_and_wait(env, self.name, payload)
