"""User-supplied regular expressions, compiled and matched by RE2 in linear time.

Invariant: no pattern a user (or an admin scoped to one agent) sets is ever run by Python's
backtracking ``re``; RE2 matches in time linear in the text, so ``(x+x+)+y`` cannot freeze
the host. RE2 refuses what it cannot run linearly (backreferences, lookaround) and patterns
whose compiled program exceeds ``USER_REGEX_MAX_MEM_BYTES``: such a pattern is rejected when
it is set (``check_user_pattern``), and one already stored fails closed (``compile_stored``
returns None) with one warning per pattern.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

import re2

from nanoclaw.channels.text import replace_lone_surrogates
from nanoclaw.errors import ValidationError

log = logging.getLogger("nanoclaw.routing.regex")

# Compiled-program budget per pattern; RE2 refuses a pattern that needs more.
USER_REGEX_MAX_MEM_BYTES = 1 << 20
COMPILED_PATTERNS_KEPT = 512

_warned: set[str] = set()


class UserPatternError(ValidationError):
    """A user pattern RE2 refuses; ``reason`` is RE2's own explanation."""

    def __init__(self, pattern: str, reason: str) -> None:
        super().__init__(
            f"{pattern!r} is not a valid regular expression (RE2 syntax): {reason}",
            field="pattern",
        )
        self.pattern = pattern
        self.reason = reason


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # refusals are reported to the user, not to stderr
    options.max_mem = USER_REGEX_MAX_MEM_BYTES
    return options


@lru_cache(maxsize=COMPILED_PATTERNS_KEPT)
def _compile(pattern: str) -> Any:
    try:
        return re2.compile(pattern, _options())
    except re2.error as exc:
        raise UserPatternError(pattern, _reason(exc)) from None
    except (TypeError, ValueError, UnicodeError) as exc:
        raise UserPatternError(pattern, str(exc)) from None


def _reason(exc: BaseException) -> str:
    (arg, *_) = exc.args or ("refused",)
    return arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)


def check_user_pattern(pattern: str) -> None:
    """Raise ``UserPatternError`` (a ``ValidationError``) with RE2's reason; call before writing."""
    _compile(pattern)


def compile_stored(pattern: str) -> Any | None:
    """A stored pattern, or None when RE2 refuses it (the caller then does not match: fail closed)."""
    try:
        return _compile(pattern)
    except UserPatternError as exc:
        if pattern not in _warned:
            _warned.add(pattern)
            log.warning(
                "stored pattern %r is refused by RE2 (%s): it never matches until it is changed",
                pattern,
                exc.reason,
            )
        return None


def search(compiled: Any, text: str) -> bool:
    """Whether ``compiled`` matches anywhere in ``text`` (lone surrogates are matched as U+FFFD)."""
    try:
        return compiled.search(text) is not None
    except UnicodeEncodeError:
        return compiled.search(replace_lone_surrogates(text)) is not None
