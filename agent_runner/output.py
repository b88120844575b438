"""The output protocol (DESIGN §6): final text → origin; ``<message to=…>`` → named destinations; ``<internal>`` never sent."""

from __future__ import annotations

import re
from dataclasses import dataclass

_INTERNAL = re.compile(r"<internal>.*?(?:</internal>|$)", re.DOTALL | re.IGNORECASE)
_MESSAGE = re.compile(
    r"<message\s+to\s*=\s*[\"']([^\"']*)[\"']\s*>(.*?)</message>", re.DOTALL | re.IGNORECASE
)


@dataclass(frozen=True)
class Reply:
    to: str | None  # None = the origin of the batch
    text: str


def parse_output(text: str) -> list[Reply]:
    """Split a turn's final text into replies, in order; empty parts are skipped."""
    cleaned = _INTERNAL.sub("", text)
    replies: list[Reply] = []
    remainder: list[str] = []
    cursor = 0
    for match in _MESSAGE.finditer(cleaned):
        remainder.append(cleaned[cursor : match.start()])
        cursor = match.end()
        body = match.group(2).strip()
        if body:
            replies.append(Reply(to=match.group(1).strip(), text=body))
    remainder.append(cleaned[cursor:])
    origin_text = "".join(remainder).strip()
    if origin_text:
        replies.insert(0, Reply(to=None, text=origin_text))
    return replies
