"""Frames of the CLI socket protocol (one JSON object per line); see docs/cli-protocol.md."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from nanoclaw.errors import ValidationError

CHAT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
HANDLE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}$")
MAX_FRAME_BYTES = 4 * 1024 * 1024
MAX_TEXT_CHARS = 200_000


def validate_chat(name: str) -> str:
    if not CHAT_NAME_RE.fullmatch(name):
        raise ValidationError(
            f"invalid chat name {name!r}: 1–64 letters, digits, '_', '.' or '-'", field="chat"
        )
    return name


def validate_handle(handle: str) -> str:
    if not HANDLE_RE.fullmatch(handle):
        raise ValidationError(f"invalid sender handle {handle!r}", field="sender")
    return handle


@dataclass(frozen=True)
class ClientMessage:
    chat: str
    sender: str
    text: str
    sender_name: str | None = None
    client_id: str | None = None


def encode(frame: dict[str, Any]) -> bytes:
    return (json.dumps(frame, ensure_ascii=False) + "\n").encode()


def parse_client_frame(line: bytes) -> dict[str, Any]:
    """Decode one client line into a validated frame; raises ``ValidationError``."""
    if len(line) > MAX_FRAME_BYTES:
        raise ValidationError("frame too large", field="frame")
    try:
        frame = json.loads(line)
    except ValueError as exc:
        raise ValidationError(f"malformed JSON: {exc}", field="frame") from exc
    if not isinstance(frame, dict):
        raise ValidationError("a frame must be a JSON object", field="frame")
    kind = frame.get("type")
    if kind not in ("hello", "message", "action"):
        raise ValidationError(f"unknown frame type {kind!r}", field="type")
    validate_chat(str(frame.get("chat", "local")))
    if kind == "message":
        text = frame.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ValidationError("a message needs non-empty 'text'", field="text")
        if len(text) > MAX_TEXT_CHARS:
            raise ValidationError(
                f"message too long ({len(text)} characters; the limit is {MAX_TEXT_CHARS})",
                field="text",
            )
        validate_handle(str(frame.get("sender", "")))
        reply_to = frame.get("reply_to")  # the id of an earlier message of this chat
        if reply_to is not None and (not isinstance(reply_to, str) or len(reply_to) > 256):
            raise ValidationError("'reply_to' must be a message id (a string)", field="reply_to")
    if kind == "action":  # a card answer: {question_id, value, sender}
        for key in ("question_id", "value"):
            if not isinstance(frame.get(key), str) or not frame[key]:
                raise ValidationError(f"an action needs a non-empty {key!r}", field=key)
        validate_handle(str(frame.get("sender", "")))
    return frame
