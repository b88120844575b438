"""The CLI socket protocol's line codec: one JSON object per line, parsed into the models of ``frames``."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from nanoclaw.channels.cli.frames import (
    CHAT_NAME_PATTERN,
    CLIENT_FRAME,
    HANDLE_PATTERN,
    MAX_TEXT_CHARS,
    Ack,
    Action,
    Hello,
    Message,
)
from nanoclaw.errors import ValidationError

CHAT_NAME_RE = re.compile(CHAT_NAME_PATTERN)
HANDLE_RE = re.compile(HANDLE_PATTERN)
MAX_FRAME_BYTES = 4 * 1024 * 1024
CLIENT_FRAME_TYPES = ("hello", "message", "action", "ack")

__all__ = [
    "CHAT_NAME_RE",
    "MAX_FRAME_BYTES",
    "MAX_TEXT_CHARS",
    "encode",
    "parse_client_frame",
    "validate_chat",
    "validate_handle",
]


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


def encode(frame: BaseModel | dict[str, Any]) -> bytes:
    if isinstance(frame, BaseModel):
        return frame.model_dump_json(exclude_none=True).encode() + b"\n"
    return (json.dumps(frame, ensure_ascii=False) + "\n").encode()


def parse_client_frame(line: bytes) -> Hello | Message | Action | Ack:
    """Decode one client line into a validated frame; raises ``ValidationError`` with a clear reason.

    The JSON parser is pydantic's: bounded nesting depth, strict UTF-8, and lone surrogate
    escapes refused, so no input can raise anything but a validation error. The frame size limit
    (``MAX_FRAME_BYTES``) is the reader's: the adapter refuses a longer line before parsing it.
    """
    try:
        return CLIENT_FRAME.validate_json(line)
    except PydanticValidationError as exc:
        raise _explain(exc) from None


def _explain(exc: PydanticValidationError) -> ValidationError:
    error = exc.errors(include_url=False)[0]
    kind, message = error["type"], str(error["msg"])
    where = ".".join(str(part) for part in error["loc"])
    if kind == "json_invalid":
        if "hex escape" in message or "surrogate" in message:
            return ValidationError(
                f"invalid Unicode: a lone surrogate escape (\\ud800–\\udfff without its pair) "
                f"is not a character ({message})",
                field="frame",
            )
        if "code point" in message or "utf-8" in message.lower():
            return ValidationError(
                f"invalid Unicode: the frame is not UTF-8 ({message})", field="frame"
            )
        if "recursion limit" in message:
            return ValidationError("frame nested too deeply", field="frame")
        return ValidationError(f"malformed JSON: {message}", field="frame")
    if kind in ("model_attributes_type", "model_type", "dict_type"):
        return ValidationError("a frame must be a JSON object", field="frame")
    if kind == "union_tag_invalid":
        tag = error.get("ctx", {}).get("tag")
        expected = ", ".join(CLIENT_FRAME_TYPES)
        return ValidationError(f"unknown frame type {tag!r} (expected {expected})", field="type")
    if kind == "union_tag_not_found":
        return ValidationError("a frame needs a 'type'", field="type")
    field = str(error["loc"][-1]) if error["loc"] else "frame"
    if field == "chat":
        return ValidationError(
            "invalid chat name: 1–64 letters, digits, '_', '.' or '-'", field="chat"
        )
    if field == "sender":
        return ValidationError("invalid sender handle", field="sender")
    if field == "text" and kind in ("string_too_long",):
        return ValidationError(
            f"message too long (the limit is {MAX_TEXT_CHARS} characters)", field="text"
        )
    if field == "text" and kind in ("string_too_short", "string_pattern_mismatch", "missing"):
        return ValidationError("a message needs non-empty 'text'", field="text")
    return ValidationError(f"{where}: {message}", field=field)
