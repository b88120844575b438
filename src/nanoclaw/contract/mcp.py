"""MCP server specs shared by host and runner: names, the no-secrets rule, tool names within 64 chars.

Invariant 5 (no secret enters a sandbox): an MCP server's ``env`` is written into the runner's
config, so a value that looks like a credential (by its key or its shape) is refused where the
server is configured, with the reason. Stored in ``container_configs.mcp_servers`` as
``{"<name>": {"command": str, "args": [str], "env": {str: str}}}``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

MCP_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
MAX_SERVERS = 16
MAX_ARGS = 64
MAX_ARG_CHARS = 4096
MAX_ENV = 32
TOOL_NAME_MAX_CHARS = 64  # the Messages API's limit for a tool name
_TOOL_CHAR = re.compile(r"[^A-Za-z0-9_-]")
_SECRET_KEY = re.compile(
    r"(KEY|TOKEN|SECRET|PASSW(OR)?D|CREDENTIAL|AUTH|PRIVATE|COOKIE|SESSION)", re.IGNORECASE
)
_SECRET_VALUE_PREFIXES = (
    "sk-",
    "xoxb-",
    "xoxp-",
    "xapp-",
    "ghp_",
    "gho_",
    "ghs_",
    "github_pat_",
    "glpat-",
    "AKIA",
    "ASIA",
    "AIza",
    "ya29.",
    "eyJ",
    "-----BEGIN",
)
_OPAQUE = re.compile(r"^[A-Za-z0-9+/_=.-]{32,}$")


class McpConfigError(ValueError):
    """An MCP server spec that cannot be used; the message says why."""


@dataclass(frozen=True)
class McpServerSpec:
    name: str
    command: str
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"command": self.command, "args": list(self.args), "env": dict(self.env)}


def looks_secret(key: str, value: str) -> bool:
    """A credential by its name or its shape (long opaque strings, known token prefixes)."""
    if _SECRET_KEY.search(key):
        return True
    text = value.strip()
    if text.startswith(_SECRET_VALUE_PREFIXES):
        return True
    if text.startswith(("/", "./", "~/")):
        return False  # a path
    has_digit = any(c.isdigit() for c in text)
    has_alpha = any(c.isalpha() for c in text)
    return bool(_OPAQUE.match(text)) and has_digit and has_alpha


def validate_server(name: str, command: str, args: Any = (), env: Any = None) -> McpServerSpec:
    if not isinstance(name, str) or not MCP_NAME_RE.match(name):
        raise McpConfigError(
            f"invalid MCP server name {name!r}: 1-32 lowercase letters, digits, '_' or '-'"
        )
    if not isinstance(command, str) or not command.strip() or "\x00" in command:
        raise McpConfigError(f"MCP server {name}: 'command' must be a non-empty string")
    if not isinstance(args, list | tuple) or not all(isinstance(a, str) for a in args):
        raise McpConfigError(f"MCP server {name}: 'args' must be a list of strings")
    if len(args) > MAX_ARGS or any(len(a) > MAX_ARG_CHARS or "\x00" in a for a in args):
        raise McpConfigError(f"MCP server {name}: too many or too long arguments")
    env = env or {}
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise McpConfigError(f"MCP server {name}: 'env' must map strings to strings")
    if len(env) > MAX_ENV:
        raise McpConfigError(f"MCP server {name}: at most {MAX_ENV} environment variables")
    for key, value in env.items():
        if looks_secret(key, value):
            raise McpConfigError(
                f"MCP server {name}: {key} looks like a secret, and no secret may enter the "
                "sandbox (its env is visible inside it). Use a server that needs no key; "
                "see docs/agent.md, 'MCP servers'"
            )
    return McpServerSpec(name=name, command=command, args=tuple(args), env=dict(env))


def parse_servers(raw: str | dict[str, Any] | None) -> list[McpServerSpec]:
    """The stored JSON as specs (validated again: a spec stored before a rule is checked too)."""
    if not raw:
        return []
    data = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(data, dict):
        raise McpConfigError("mcp_servers must be a JSON object of name → spec")
    specs = []
    for name, spec in sorted(data.items()):
        if not isinstance(spec, dict):
            raise McpConfigError(f"MCP server {name}: the spec must be an object")
        specs.append(
            validate_server(name, spec.get("command", ""), spec.get("args", []), spec.get("env"))
        )
    if len(specs) > MAX_SERVERS:
        raise McpConfigError(f"at most {MAX_SERVERS} MCP servers per agent")
    return specs


def dump_servers(specs: list[McpServerSpec]) -> str:
    return json.dumps({s.name: s.to_json() for s in sorted(specs, key=lambda s: s.name)})


def tool_name(server: str, tool: str) -> str:
    """``mcp__<server>__<tool>``, safe characters only, at most 64 characters (hashed if longer)."""
    full = _TOOL_CHAR.sub("_", f"mcp__{server}__{tool}")
    if len(full) <= TOOL_NAME_MAX_CHARS:
        return full
    digest = hashlib.sha1(full.encode()).hexdigest()[:8]
    return f"{full[: TOOL_NAME_MAX_CHARS - 9]}_{digest}"
