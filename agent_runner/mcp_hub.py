"""The agent's MCP servers: stdio servers started in the sandbox, their tools in the tool loop.

Each server runs in a task of its own that holds the SDK's context managers for the runner's
life (anyio scopes must be left in the task that entered them). A server that fails to start
is reported to the agent (in the system prompt) and to the operator (the runner log and the
session state ``mcp_status``), and the turn goes on without it. Results are capped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_runner.tools.base import FunctionTool, ToolEnv, ToolOutput, cap_text
from nanoclaw.contract.mcp import McpConfigError, McpServerSpec, parse_servers, tool_name
from nanoclaw.contract.runner_config import CONTAINER_GROUP_DIR, ENV_GROUP_DIR, RunnerConfig

log = logging.getLogger("agent_runner.mcp")

START_TIMEOUT_S = 30.0
MAX_RESULT_CHARS = 20_000
STATUS_KEY = "mcp_status"


@dataclass(frozen=True)
class _Server:
    spec: McpServerSpec
    session: Any  # mcp.ClientSession


class McpTool(FunctionTool):
    """One tool of one MCP server, under its namespaced name."""

    def __init__(self, hub: McpHub, server: str, tool: Any) -> None:
        self.hub = hub
        self.server = server
        self.remote_name = str(tool.name)
        self.name = tool_name(server, self.remote_name)
        self.description = (tool.description or f"{self.remote_name} (MCP server {server})")[:1024]
        schema = tool.inputSchema if isinstance(tool.inputSchema, dict) else {}
        self.schema = (
            schema if schema.get("type") == "object" else {"type": "object", "properties": {}}
        )

    async def run(self, tool_input: dict[str, Any], env: ToolEnv) -> ToolOutput:
        return await self.hub.call(
            self.server, self.remote_name, tool_input, env.config.tool_timeout_s
        )


class McpHub:
    def __init__(self, *, specs: Sequence[McpServerSpec], cwd: Path) -> None:
        self.specs = list(specs)
        self.cwd = cwd
        self.started = False
        self.tools: list[McpTool] = []
        self.failures: dict[str, str] = {}
        self._servers: dict[str, _Server] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = asyncio.Event()

    async def start(self) -> None:
        """Start every server (concurrently, each with a deadline); never raises."""
        self.started = True
        if not self.specs:
            return
        ready = {s.name: asyncio.get_running_loop().create_future() for s in self.specs}
        for spec in self.specs:
            self._tasks.append(asyncio.create_task(self._serve(spec, ready[spec.name])))
        for spec in self.specs:
            future = ready[spec.name]
            try:
                listed = await asyncio.wait_for(asyncio.shield(future), START_TIMEOUT_S)
            except TimeoutError:
                self.failures[spec.name] = f"did not start within {START_TIMEOUT_S:g} s"
            except Exception as exc:  # the server's own failure, whatever it is
                self.failures[spec.name] = _describe(exc)
            else:
                self.tools += [McpTool(self, spec.name, t) for t in listed]
        for name, reason in self.failures.items():
            log.warning("MCP server %s is unavailable: %s", name, reason)

    async def _serve(self, spec: McpServerSpec, ready: asyncio.Future[list[Any]]) -> None:
        from mcp import ClientSession, StdioServerParameters
        from mcp.client.stdio import stdio_client

        params = StdioServerParameters(
            command=spec.command, args=list(spec.args), env=dict(spec.env) or None, cwd=self.cwd
        )
        try:
            async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                listed = (await session.list_tools()).tools
                self._servers[spec.name] = _Server(spec, session)
                if not ready.done():
                    ready.set_result(list(listed))
                await self._closing.wait()
        except BaseException as exc:  # an exception group from anyio, a missing command, …
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
            self.failures.setdefault(spec.name, f"stopped: {_describe(exc)}")
            self._servers.pop(spec.name, None)
            if isinstance(exc, asyncio.CancelledError):
                raise

    async def call(
        self, server: str, tool: str, arguments: dict[str, Any], timeout_s: float
    ) -> ToolOutput:
        entry = self._servers.get(server)
        if entry is None:
            why = self.failures.get(server, "not running")
            return ToolOutput(f"MCP server {server} is unavailable: {why}", is_error=True)
        try:
            result = await asyncio.wait_for(entry.session.call_tool(tool, arguments), timeout_s)
        except TimeoutError:
            return ToolOutput(
                f"{tool} (MCP server {server}) timed out after {timeout_s:g} s", is_error=True
            )
        except Exception as exc:
            return ToolOutput(
                f"{tool} (MCP server {server}) failed: {_describe(exc)}", is_error=True
            )
        parts: list[str] = []
        for block in result.content:
            kind = getattr(block, "type", "")
            if kind == "text":
                parts.append(str(block.text))
            else:
                parts.append(f"[{kind or 'content'} omitted]")
        if getattr(result, "structuredContent", None) and not parts:
            parts.append(json.dumps(result.structuredContent))
        return ToolOutput(
            cap_text("\n".join(parts) or "(no output)", MAX_RESULT_CHARS),
            is_error=bool(result.isError),
        )

    def status(self) -> dict[str, str]:
        """Each configured server's state: ``ok: <n> tools`` or ``failed: <why>``."""
        out = {name: f"failed: {why}" for name, why in self.failures.items()}
        for spec in self.specs:
            if spec.name not in out:
                count = sum(1 for t in self.tools if t.server == spec.name)
                out[spec.name] = f"ok: {count} tool{'s' if count != 1 else ''}"
        return out

    def prompt_note(self) -> str:
        """What the agent is told about its MCP servers (failures included)."""
        if not self.specs and not self.failures:
            return ""
        lines = []
        for name, state in sorted(self.status().items()):
            lines.append(f"- {name}: {state}")
        return (
            "## MCP servers\nTools named mcp__<server>__<tool> come from these servers:\n"
            + "\n".join(lines)
        )

    async def aclose(self) -> None:
        self._closing.set()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, 5.0)
        for task in self._tasks:
            task.cancel()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]


def mcp_hub(config: RunnerConfig) -> McpHub | None:
    """The hub for the config's servers (None without any); a bad spec is a failure, not a crash."""
    if not config.mcp_servers:
        return None
    cwd = Path(os.environ.get(ENV_GROUP_DIR, CONTAINER_GROUP_DIR))
    try:
        specs = parse_servers(config.mcp_servers)
    except McpConfigError as exc:
        hub = McpHub(specs=[], cwd=cwd)
        hub.failures["(config)"] = str(exc)
        return hub
    return McpHub(specs=specs, cwd=cwd)
