"""Text at the channel boundary: lone surrogates (text that is not valid Unicode) never pass.

A lone UTF-16 surrogate (U+D800–U+DFFF unpaired) reaches Python from JSON payloads that carry
an escaped half pair (``"\\ud83d"``): Slack, Telegram and the CLI socket all decode JSON. Such a
``str`` cannot be encoded to UTF-8, so SQLite, the model API and every platform refuse it later,
after the message was acknowledged. One mechanism per channel kind: an event from a platform
that delivers such text (Slack, Telegram: RFC 8259 §8.2 leaves it undefined; Unicode's practice
is U+FFFD) is repaired by ``clean_event``, which ``routing.inbound.InboundHandler`` applies to
every event before routing; the CLI never builds such an event, as its frame parser refuses a
lone surrogate escape with an ``error`` frame (``cli.protocol.parse_client_frame``).
"""

from __future__ import annotations

import dataclasses
import re

from nanoclaw.channels.base import InboundEvent
from nanoclaw.errors import ValidationError

REPLACEMENT_CHAR = "\ufffd"
# Every code point in the surrogate block is "lone" once decoded: a valid pair decodes to one
# astral code point, so any surrogate left in a ``str`` is unpaired.
_SURROGATE = re.compile("[\ud800-\udfff]")


def has_lone_surrogates(text: str) -> bool:
    return _SURROGATE.search(text) is not None


def replace_lone_surrogates(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD (the Unicode replacement char)."""
    return _SURROGATE.sub(REPLACEMENT_CHAR, text)


def require_valid_unicode(text: str, *, field: str) -> str:
    """``text`` unchanged, or ``ValidationError`` naming the field and the first bad position."""
    found = _SURROGATE.search(text)
    if found is not None:
        raise ValidationError(
            f"{field} is not valid Unicode: lone surrogate U+{ord(found.group()):04X} "
            f"at position {found.start()}",
            field=field,
        )
    return text


def _clean(value: str | None) -> str | None:
    return replace_lone_surrogates(value) if value is not None else None


def clean_event(event: InboundEvent) -> tuple[InboundEvent, bool]:
    """The event with every text field free of lone surrogates; True when anything changed."""
    m = event.message
    fields = (m.id, m.text, m.sender, m.sender_name or "", event.platform_id, event.thread_id or "")
    names = [a.name for a in m.attachments]
    if not any(has_lone_surrogates(v) for v in (*fields, *names)):
        return event, False
    attachments = tuple(
        dataclasses.replace(a, name=replace_lone_surrogates(a.name)) for a in m.attachments
    )
    message = dataclasses.replace(
        m,
        id=replace_lone_surrogates(m.id),
        text=replace_lone_surrogates(m.text),
        sender=replace_lone_surrogates(m.sender),
        sender_name=_clean(m.sender_name),
        attachments=attachments,
    )
    cleaned = dataclasses.replace(
        event,
        platform_id=replace_lone_surrogates(event.platform_id),
        thread_id=_clean(event.thread_id),
        message=message,
    )
    return cleaned, True
