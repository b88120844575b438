"""The command gate: which slash commands reach the agent, which are refused, which vanish.

Commands are recognised case-insensitively (``/CLEAR`` is ``/clear``). The router applies
the gate to every wiring, engaged or accumulating, so a gated command is never stored as
a context row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Commands that would reconfigure the agent's own tooling; never forwarded.
FILTERED_COMMANDS = frozenset({"/login", "/logout", "/doctor", "/config", "/remote-control"})
# Commands that reach the agent only from an owner or an admin of its group.
ADMIN_COMMANDS = frozenset({"/clear", "/compact", "/context", "/cost", "/files"})


@dataclass(frozen=True)
class GateDecision:
    action: Literal["pass", "drop", "deny"]
    reply: str | None = None


def command_of(text: str) -> str | None:
    stripped = text.lstrip()
    if not stripped.startswith("/"):
        return None
    return stripped.split(maxsplit=1)[0].lower()


def gate(text: str, *, is_admin: bool) -> GateDecision:
    command = command_of(text)
    if command is None:
        return GateDecision("pass")
    if command in FILTERED_COMMANDS:
        return GateDecision("drop")
    if command in ADMIN_COMMANDS and not is_admin:
        return GateDecision("deny", f"Permission denied: {command} requires admin access.")
    return GateDecision("pass")


def is_gated_command(text: str) -> bool:
    """Whether the text is a filtered or an admin command (never a context row)."""
    command = command_of(text)
    return command is not None and (command in FILTERED_COMMANDS or command in ADMIN_COMMANDS)
