"""Engage rules: whether a wiring's agent answers a message (upstream §3); patterns run on RE2."""

from __future__ import annotations

from nanoclaw.routing.user_regex import UserPatternError, check_user_pattern, compile_stored, search

ALWAYS = "."


def pattern_is_valid(pattern: str) -> bool:
    """Whether RE2 accepts ``pattern`` (see ``check_user_pattern`` for the reason when not)."""
    try:
        check_user_pattern(pattern)
    except UserPatternError:
        return False
    return True


def pattern_matches(pattern: str | None, text: str) -> bool:
    """``.`` (or no pattern) always matches; a stored pattern RE2 refuses fails closed (never)."""
    if not pattern or pattern == ALWAYS:
        return True
    compiled = compile_stored(pattern)
    if compiled is None:
        return False
    return search(compiled, text)


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
