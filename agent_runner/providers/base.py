"""The provider interface: one turn in, final text (and usage) out; tools act through ``TurnContext``."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from agent_runner.rows import Destination, InboundRow


@dataclass(frozen=True)
class Usage:
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class TurnRequest:
    prompt: str  # the formatted batch
    system_prompt: str
    batch: tuple[InboundRow, ...]
    destinations: tuple[Destination, ...]
    # A task run with context_mode "isolated": the turn neither sees nor extends the transcript.
    fresh_context: bool = False


@dataclass(frozen=True)
class TurnResult:
    text: str
    usage: Usage | None = None
    error: str | None = None  # set on a final error: ``text`` is the user-facing error reply


class TurnContext(Protocol):
    """What a provider's tools may do while a turn runs."""

    group_dir: Path
    session_dir: Path

    def touch(self) -> None:
        """Mark liveness (heartbeat); call on every model or tool event."""

    def send(self, *, to: str | None, text: str, files: Sequence[str] = ()) -> int:
        """Send a chat message now; returns its seq."""

    def request_action(self, action: str, payload: dict[str, Any]) -> int:
        """Write a ``system`` row the host carries out and answers with an inbound row."""

    def get_state(self, key: str) -> str | None: ...

    def set_state(self, key: str, value: str | None) -> None: ...

    def declare_tool(self, tool: str | None, *, timeout_ms: int | None = None) -> None:
        """Record the running tool and its timeout so stuck detection can widen its threshold."""


class Provider(abc.ABC):
    name: str

    @abc.abstractmethod
    async def run_turn(self, request: TurnRequest, ctx: TurnContext) -> TurnResult: ...

    async def reset(self, ctx: TurnContext) -> None:
        """Forget the conversation (``/clear``)."""
        return None

    async def aclose(self) -> None:
        return None
