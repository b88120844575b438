"""Platform file names made safe to save: one path component, within a byte limit, extension kept.

Platforms allow names no file system does (Telegram: any length, any character), so an
adapter shortens a name *before* it acknowledges the update: the message is never lost to
``File name too long`` afterwards.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

MAX_NAME_BYTES = 200  # below every common file system's 255-byte limit, with room for suffixes
MAX_EXTENSION_BYTES = 16
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")


def _clip_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 form fits ``max_bytes`` (never splits a char)."""
    encoded = text.encode("utf-8")[:max_bytes]
    return encoded.decode("utf-8", errors="ignore")


def safe_file_name(name: str | None, *, fallback: str, max_bytes: int = MAX_NAME_BYTES) -> str:
    """``name`` as one safe path component of at most ``max_bytes`` UTF-8 bytes.

    Separators and control characters become ``_``; ``.``/``..``/empty names become
    ``fallback``. A name that is too long keeps its extension (when short) and gets an
    8-hex digest of the full name, so two long names that share a prefix stay distinct.
    Lone surrogates (invalid Unicode) are replaced, never passed on.
    """
    raw = (name or "").encode("utf-8", errors="replace").decode("utf-8")
    cleaned = _UNSAFE.sub("_", unicodedata.normalize("NFC", raw)).strip()
    if cleaned in ("", ".", ".."):
        cleaned = fallback
    if len(cleaned.encode("utf-8")) <= max_bytes:
        return cleaned
    stem, dot, ext = cleaned.rpartition(".")
    if not dot or not stem or len(("." + ext).encode("utf-8")) > MAX_EXTENSION_BYTES:
        stem, ext = cleaned, ""
    suffix = "-" + hashlib.sha256(cleaned.encode("utf-8")).hexdigest()[:8]
    tail = suffix + ("." + ext if ext else "")
    return _clip_utf8(stem, max_bytes - len(tail.encode("utf-8"))) + tail
