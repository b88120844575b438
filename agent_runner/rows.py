"""Typed views of session DB rows as the runner reads them (the session-DB contract's types)."""

from __future__ import annotations

from nanoclaw.contract.sessiondb import Destination, InboundRow, Routing, parse_content

__all__ = ["Destination", "InboundRow", "Routing", "is_clear_command", "parse_content"]


def is_clear_command(row: InboundRow) -> bool:
    """``/clear`` in any case (``/CLEAR`` too), as the first word of a chat row."""
    words = row.text.strip().split()
    return row.is_command and bool(words) and words[0].lower() == "/clear"
