"""The tool interface: a name, an API tool definition, and an async ``run`` inside the sandbox."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_runner.context import RunnerContext
from nanoclaw.contract.runner_config import RunnerConfig

MAX_TOOL_OUTPUT_CHARS = 30_000  # what one tool result may put into the conversation


@dataclass(frozen=True)
class ToolEnv:
    """What a tool may touch: the turn's context, the runner's config and its folders."""

    ctx: RunnerContext
    config: RunnerConfig
    global_dir: Path

    @property
    def group_dir(self) -> Path:
        return self.ctx.group_dir

    @property
    def session_dir(self) -> Path:
        return self.ctx.session_dir


@dataclass(frozen=True)
class ToolOutput:
    content: str | list[dict[str, Any]]
    is_error: bool = False


class ToolError(Exception):
    """A tool's expected failure: reported to the model as an ``is_error`` result."""


class Tool(abc.ABC):
    name: str

    @abc.abstractmethod
    def definition(self) -> dict[str, Any]:
        """The entry for the Messages API ``tools`` list."""

    @abc.abstractmethod
    async def run(self, tool_input: dict[str, Any], env: ToolEnv) -> ToolOutput: ...


class FunctionTool(Tool):
    """A custom tool described by a JSON schema: an MCP server's, or generated from a model
    (``agent_runner.tools.schema.ModelTool``)."""

    description: str
    schema: dict[str, Any]
    # The host action (``system`` row) this tool asks for, or None when it writes chat rows
    # or reads only. Every named action has a handler on the host (test_agent_surface.py).
    host_action: str | None = None

    def definition(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "input_schema": self.schema}


def cap_text(text: str, limit: int = MAX_TOOL_OUTPUT_CHARS) -> str:
    """Keep the head and tail of a long output and say how much was left out."""
    if len(text) <= limit:
        return text
    half = limit // 2
    dropped = len(text) - 2 * half
    return f"{text[:half]}\n\n[… {dropped} characters omitted …]\n\n{text[-half:]}"


class ToolSet:
    """The tools of one provider; ``definitions()`` is byte-stable so the prompt cache holds."""

    def __init__(self, tools: Sequence[Tool], server_tools: Sequence[dict[str, Any]] = ()) -> None:
        self._tools = {t.name: t for t in tools}
        defs = [t.definition() for t in tools] + [dict(s) for s in server_tools]
        if defs:
            defs[-1] = {**defs[-1], "cache_control": {"type": "ephemeral"}}
        self._definitions = defs

    def definitions(self) -> list[dict[str, Any]]:
        return self._definitions

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return sorted(self._tools)
