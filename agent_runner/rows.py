"""Typed views of session DB rows as the runner reads them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class InboundRow:
    id: str
    seq: int
    kind: str
    timestamp: str
    status: str
    process_after: str | None
    trigger: int
    channel_type: str | None
    platform_id: str | None
    thread_id: str | None
    content: dict[str, Any]
    on_wake: int
    series_id: str | None
    source_session_id: str | None

    @property
    def text(self) -> str:
        value = self.content.get("text") or self.content.get("prompt") or ""
        return str(value)

    @property
    def is_command(self) -> bool:
        return self.kind == "chat" and self.text.lstrip().startswith("/")


@dataclass(frozen=True)
class Destination:
    name: str
    display_name: str | None
    type: str  # "channel" | "agent"
    channel_type: str | None
    platform_id: str | None
    agent_group_id: str | None


@dataclass(frozen=True)
class Routing:
    channel_type: str | None
    platform_id: str | None
    thread_id: str | None


def parse_content(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return {"text": str(raw)}
    return value if isinstance(value, dict) else {"text": str(value)}


def is_clear_command(row: InboundRow) -> bool:
    """``/clear`` in any case (``/CLEAR`` too), as the first word of a chat row."""
    words = row.text.strip().split()
    return row.is_command and bool(words) and words[0].lower() == "/clear"
