"""Attachments in: images and PDFs become native content blocks; other files are named by path."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent_runner.rows import InboundRow

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
MAX_IMAGE_BYTES = 5 * 1024 * 1024  # the API's per-image limit
MAX_PDF_BYTES = 32 * 1024 * 1024  # the API's per-request PDF limit
_SUFFIX_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".pdf": "application/pdf",
}


def _inside(root: Path, relative: str) -> Path | None:
    """The attachment's file, only if it is a regular file under the session's inbox."""
    inbox = (root / "inbox").resolve()
    candidate = root / relative
    if candidate.is_symlink() or not candidate.is_file():
        return None
    real = candidate.resolve()
    return real if inbox in real.parents else None


def content_blocks(batch: Sequence[InboundRow], session_dir: Path) -> list[dict[str, Any]]:
    """One image or document block per eligible attachment of the batch, in order."""
    blocks: list[dict[str, Any]] = []
    for row in batch:
        for attachment in row.content.get("attachments") or []:
            if not isinstance(attachment, dict) or not attachment.get("path"):
                continue
            path = _inside(session_dir, str(attachment["path"]))
            if path is None:
                continue
            mime = str(attachment.get("mime") or _SUFFIX_TYPES.get(path.suffix.lower(), ""))
            size = path.stat().st_size
            if mime in IMAGE_TYPES and size <= MAX_IMAGE_BYTES:
                kind = "image"
            elif mime == "application/pdf" and size <= MAX_PDF_BYTES:
                kind = "document"
            else:
                continue
            data = base64.standard_b64encode(path.read_bytes()).decode()
            blocks.append(
                {"type": kind, "source": {"type": "base64", "media_type": mime, "data": data}}
            )
    return blocks
