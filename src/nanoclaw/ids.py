"""Identifiers: ``<prefix>-<epoch_ms>-<6 base36>``, sortable by creation time."""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def new_id(prefix: str) -> str:
    suffix = "".join(secrets.choice(_ALPHABET) for _ in range(6))
    return f"{prefix}-{int(time.time() * 1000)}-{suffix}"
