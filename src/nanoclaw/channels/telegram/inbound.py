"""Reading a Bot API ``Message``: service or not, its text, media, mentions, topic and reply.

Everything here is pure (no network): the adapter downloads the ``MediaItem`` files and
builds the ``InboundEvent``. Offsets of ``MessageEntity`` are in UTF-16 code units, as the
Bot API defines them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nanoclaw.channels.base import ReplyTo
from nanoclaw.channels.filenames import safe_file_name

# Message fields that make it a service message (Bot API, "Message"): never a user's words.
SERVICE_FIELDS = frozenset(
    {
        "new_chat_members",
        "left_chat_member",
        "new_chat_title",
        "new_chat_photo",
        "delete_chat_photo",
        "group_chat_created",
        "supergroup_chat_created",
        "channel_chat_created",
        "message_auto_delete_timer_changed",
        "migrate_to_chat_id",
        "migrate_from_chat_id",
        "pinned_message",
        "successful_payment",
        "refunded_payment",
        "users_shared",
        "chat_shared",
        "connected_website",
        "write_access_allowed",
        "proximity_alert_triggered",
        "boost_added",
        "chat_background_set",
        "forum_topic_created",
        "forum_topic_edited",
        "forum_topic_closed",
        "forum_topic_reopened",
        "general_forum_topic_hidden",
        "general_forum_topic_unhidden",
        "giveaway_created",
        "giveaway_completed",
        "video_chat_scheduled",
        "video_chat_started",
        "video_chat_ended",
        "video_chat_participants_invited",
        "web_app_data",
    }
)


@dataclass(frozen=True)
class MediaItem:
    """One file of a message to download with getFile."""

    file_id: str
    name: str
    mime: str | None
    size: int


def is_service(msg: dict[str, Any]) -> bool:
    return any(key in msg for key in SERVICE_FIELDS)


def _utf16_slice(text: str, offset: int, length: int) -> str:
    units = text.encode("utf-16-le")
    return units[2 * offset : 2 * (offset + length)].decode("utf-16-le", errors="replace")


def body_and_entities(msg: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    if "text" in msg:
        return str(msg.get("text") or ""), list(msg.get("entities") or [])
    return str(msg.get("caption") or ""), list(msg.get("caption_entities") or [])


def mentions_bot(msg: dict[str, Any], *, bot_id: int | None, username: str | None) -> bool:
    """From entities only: ``@username``, a text mention of the bot, ``/command@username``."""
    text, entities = body_and_entities(msg)
    handle = f"@{username}".lower() if username else None
    for entity in entities:
        kind = entity.get("type")
        piece = _utf16_slice(text, int(entity.get("offset", 0)), int(entity.get("length", 0)))
        if kind == "mention" and handle is not None and piece.lower() == handle:
            return True
        if kind == "text_mention" and (entity.get("user") or {}).get("id") == bot_id:
            return True
        if kind == "bot_command" and handle is not None and piece.lower().endswith(handle):
            return True
    return False


def strip_own_command_suffix(text: str, username: str | None) -> str:
    """``/clear@andy_bot args`` → ``/clear args`` (the command gate reads bare commands)."""
    if not username or not text.startswith("/"):
        return text
    head, sep, rest = text.partition(" ")
    command, at, target = head.partition("@")
    if at and target.lower() == username.lower():
        return command + sep + rest
    return text


def topic_of(msg: dict[str, Any]) -> str | None:
    """The forum topic a message belongs to (None: a plain chat, or a forum's General topic)."""
    if msg.get("is_topic_message") and msg.get("message_thread_id") is not None:
        return str(msg["message_thread_id"])
    return None


def sender_name(user: dict[str, Any]) -> str | None:
    name = " ".join(p for p in (user.get("first_name"), user.get("last_name")) if p)
    return name or user.get("username")


def describe(msg: dict[str, Any]) -> str:
    """The readable text of a message: its text or caption, plus what cannot be a file."""
    text, _ = body_and_entities(msg)
    lines = [text] if text else []
    if "sticker" in msg:
        emoji = msg["sticker"].get("emoji")
        lines.append(f"[sticker {emoji}]" if emoji else "[sticker]")
    if "venue" in msg:
        venue = msg["venue"]
        loc = venue.get("location") or {}
        lines.append(
            f"[venue: {venue.get('title', '')}, {venue.get('address', '')}"
            f" ({loc.get('latitude')}, {loc.get('longitude')})]"
        )
    elif "location" in msg:
        loc = msg["location"]
        lines.append(f"[location: {loc.get('latitude')}, {loc.get('longitude')}]")
    if "contact" in msg:
        contact = msg["contact"]
        who = " ".join(p for p in (contact.get("first_name"), contact.get("last_name")) if p)
        lines.append(f"[contact: {who}, {contact.get('phone_number', '')}]")
    if "poll" in msg:
        poll = msg["poll"]
        options = " / ".join(str(o.get("text", "")) for o in poll.get("options") or [])
        lines.append(f"[poll: {poll.get('question', '')} — options: {options}]")
    if "dice" in msg:
        dice = msg["dice"]
        lines.append(f"[dice {dice.get('emoji', '')}: {dice.get('value')}]")
    return "\n".join(lines)


def media_of(msg: dict[str, Any]) -> list[MediaItem]:
    """Every file a message carries, named safely (see ``filenames.safe_file_name``)."""
    mid = msg.get("message_id")
    found: list[MediaItem] = []

    def add(item: dict[str, Any], name: str | None, fallback: str, mime: str | None) -> None:
        found.append(
            MediaItem(
                file_id=str(item["file_id"]),
                name=safe_file_name(name, fallback=fallback),
                mime=item.get("mime_type") or mime,
                size=int(item.get("file_size") or 0),
            )
        )

    if msg.get("photo"):
        largest = max(
            msg["photo"], key=lambda p: (int(p.get("file_size") or 0), int(p.get("width") or 0))
        )
        add(largest, None, f"photo-{mid}.jpg", "image/jpeg")
    if "voice" in msg:
        add(msg["voice"], None, f"voice-{mid}.ogg", "audio/ogg")
    if "audio" in msg:
        add(msg["audio"], msg["audio"].get("file_name"), f"audio-{mid}.mp3", "audio/mpeg")
    if "video" in msg:
        add(msg["video"], msg["video"].get("file_name"), f"video-{mid}.mp4", "video/mp4")
    if "video_note" in msg:
        add(msg["video_note"], None, f"video-note-{mid}.mp4", "video/mp4")
    if "animation" in msg:  # the Bot API also sets "document" for it: one file, not two
        add(
            msg["animation"], msg["animation"].get("file_name"), f"animation-{mid}.mp4", "video/mp4"
        )
    elif "document" in msg:
        doc = msg["document"]
        add(doc, doc.get("file_name"), f"document-{mid}", None)
    if "sticker" in msg:
        sticker = msg["sticker"]
        if sticker.get("is_video"):
            ext, mime = "webm", "video/webm"
        elif sticker.get("is_animated"):
            ext, mime = "tgs", "application/x-tgsticker"
        else:
            ext, mime = "webp", "image/webp"
        add(sticker, None, f"sticker-{mid}.{ext}", mime)
    return found


def reply_of(msg: dict[str, Any]) -> ReplyTo | None:
    """The replied-to message (id, text or the user's quote of it, sender), if any.

    In a forum every topic message "replies" to the topic's creation message: that is not a
    reply anyone wrote, so it is not reported.
    """
    replied = msg.get("reply_to_message")
    if not isinstance(replied, dict) or "message_id" not in replied:
        return None
    if "forum_topic_created" in replied or (
        msg.get("is_topic_message") and replied.get("message_id") == msg.get("message_thread_id")
    ):
        return None
    quote = msg.get("quote") or {}
    text = str(quote.get("text") or "") or describe(replied) or None
    sender = replied.get("from") or {}
    chat = replied.get("sender_chat") or {}
    name = sender_name(sender) if sender else chat.get("title")
    return ReplyTo(id=str(replied["message_id"]), text=text, sender=name)
