"""Read neonize ``Message`` events (``neonize.Message``: Info + a ``WAWebProtobufsE2E.Message``).

Chats and senders are JID strings without a device part (``<digits>@g.us`` for groups,
``<digits>@s.whatsapp.net`` or ``<id>@lid`` for people), as v1 stored them. Everything here
reads proto fields only; nothing talks to the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nanoclaw.channels.base import ReplyTo

GROUP_SERVER = "g.us"
USER_SERVER = "s.whatsapp.net"
LID_SERVER = "lid"
# waE2E.Message fields that carry a downloadable file, and the fallback name stem of each.
MEDIA_FIELDS = (
    ("imageMessage", "image"),
    ("documentMessage", "document"),
    ("audioMessage", "audio"),
    ("videoMessage", "video"),
    ("stickerMessage", "sticker"),
)
_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "audio/ogg": ".ogg",
    "audio/mpeg": ".mp3",
    "audio/mp4": ".m4a",
    "video/mp4": ".mp4",
    "application/pdf": ".pdf",
}


def jid_text(jid: Any) -> str:
    """``user@server`` (the device and agent parts dropped), or "" for an empty JID."""
    user, server = str(jid.User), str(jid.Server)
    if not server:
        return ""
    return f"{user}@{server}" if user else server


def is_group_jid(chat: str) -> bool:
    return chat.endswith("@" + GROUP_SERVER)


def _has(message: Any, field: str) -> bool:
    return bool(message.HasField(field))


def unwrap(message: Any) -> Any:
    """The content inside ephemeral / view-once / document-with-caption wrappers."""
    for wrapper in (
        "ephemeralMessage",
        "viewOnceMessage",
        "viewOnceMessageV2",
        "documentWithCaptionMessage",
    ):
        if _has(message, wrapper):
            return unwrap(getattr(message, wrapper).message)
    return message


def text_of(message: Any) -> str:
    """The words of a message: plain text, extended text, or a media caption."""
    message = unwrap(message)
    if message.conversation:
        return str(message.conversation)
    if _has(message, "extendedTextMessage"):
        return str(message.extendedTextMessage.text)
    for field, _stem in MEDIA_FIELDS:
        if _has(message, field) and field != "stickerMessage" and field != "audioMessage":
            return str(getattr(message, field).caption)
    return ""


def context_of(message: Any) -> Any | None:
    """The ``ContextInfo`` (mentions, the quoted message) of the message's content, if any."""
    message = unwrap(message)
    for field in ("extendedTextMessage", *(f for f, _ in MEDIA_FIELDS)):
        if _has(message, field):
            content = getattr(message, field)
            if content.HasField("contextInfo"):
                return content.contextInfo
    return None


def mentioned(message: Any) -> list[str]:
    context = context_of(message)
    return [] if context is None else [str(j) for j in context.mentionedJID]


def reply_of(message: Any) -> ReplyTo | None:
    """The quoted message (``contextInfo.stanzaID`` / ``participant`` / ``quotedMessage``)."""
    context = context_of(message)
    if context is None or not context.stanzaID:
        return None
    quoted = text_of(context.quotedMessage) if context.HasField("quotedMessage") else ""
    return ReplyTo(
        id=str(context.stanzaID), text=quoted or None, sender=str(context.participant) or None
    )


def quoted_participant(message: Any) -> str:
    context = context_of(message)
    return "" if context is None else str(context.participant)


def is_reaction(message: Any) -> bool:
    return _has(unwrap(message), "reactionMessage")


def is_protocol(message: Any) -> bool:
    """Revocations, key distribution, edits and app-state notices: never an agent's turn."""
    message = unwrap(message)
    return _has(message, "protocolMessage") or (
        _has(message, "senderKeyDistributionMessage")
        and not message.conversation
        and not _has(message, "extendedTextMessage")
        and not any(_has(message, f) for f, _ in MEDIA_FIELDS)
    )


@dataclass(frozen=True)
class Media:
    field: str  # the waE2E.Message field (imageMessage, documentMessage, …)
    name: str
    mime: str | None
    size: int


def media_of(message: Any, message_id: str) -> Media | None:
    message = unwrap(message)
    for field, stem in MEDIA_FIELDS:
        if _has(message, field):
            content = getattr(message, field)
            mime = str(content.mimetype) or None
            base = (mime or "").split(";", 1)[0].strip()
            name = str(getattr(content, "fileName", "") or "") if field == "documentMessage" else ""
            name = name or f"{stem}-{message_id}{_EXTENSIONS.get(base, '')}"
            return Media(field=field, name=name, mime=mime, size=int(content.fileLength))
    return None


def media_only(message: Any, field: str) -> Any:
    """A waE2E.Message holding only the media part (what ``download_any`` reads)."""
    message = unwrap(message)
    copy = type(message)()
    getattr(copy, field).CopyFrom(getattr(message, field))
    return copy
