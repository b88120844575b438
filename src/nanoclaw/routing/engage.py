"""Engage rules: whether a wiring's agent answers a message (upstream §3)."""

from __future__ import annotations

import re
from functools import lru_cache

ALWAYS = "."


@lru_cache(maxsize=512)
def _compile(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def pattern_is_valid(pattern: str) -> bool:
    return _compile(pattern) is not None


def pattern_matches(pattern: str | None, text: str) -> bool:
    """``.`` (or no pattern) always matches; an invalid regex fails open (matches)."""
    if not pattern or pattern == ALWAYS:
        return True
    compiled = _compile(pattern)
    if compiled is None:
        return True
    return compiled.search(text) is not None


def engages(
    *,
    engage_mode: str,
    engage_pattern: str | None,
    text: str,
    is_mention: bool,
    is_group: bool,
    has_active_session: bool,
) -> bool:
    if engage_mode == "pattern":
        return pattern_matches(engage_pattern, text)
    if engage_mode == "mention":
        return is_mention
    if engage_mode == "mention-sticky":
        return is_mention or (is_group and has_active_session)
    return False
