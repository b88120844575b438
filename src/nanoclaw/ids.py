"""Identifiers: ``<prefix>-<epoch_ms>-<6 base36>``, sortable by creation time."""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_SUFFIX_CHARS = 6
_SUFFIX_SPACE = len(_ALPHABET) ** _SUFFIX_CHARS


def new_id(prefix: str) -> str:
    # One draw for the whole suffix, uniform over all 36^6 values (rejection sampling: about
    # two getrandom() calls); a draw per character cost about ten.
    n = secrets.randbelow(_SUFFIX_SPACE)
    chars = []
    for _ in range(_SUFFIX_CHARS):
        n, digit = divmod(n, len(_ALPHABET))
        chars.append(_ALPHABET[digit])
    return f"{prefix}-{int(time.time() * 1000)}-{''.join(chars)}"
