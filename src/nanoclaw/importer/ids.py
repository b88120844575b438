"""Translate v1 JIDs and TypeScript v2 platform ids into this project's (channel, platform id)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChatAddress:
    channel: str
    platform_id: str
    is_group: bool


# v1 prefixes (v1-install.md §4) → our channel type.
_V1_PREFIXES = {
    "dc": "discord",
    "tg": "telegram",
    "slack": "slack",
    "mx": "matrix",
    "im": "imessage",
}
# TypeScript v2 Chat SDK prefixes are already channel names.
_V2_PREFIXED = ("telegram", "slack", "discord", "teams", "gchat", "matrix", "linear", "github")


def from_v1_jid(jid: str) -> ChatAddress:
    """A v1 chat JID; unknown prefixes keep their prefix as the channel and count as groups."""
    if jid.endswith("@g.us"):
        return ChatAddress("whatsapp", jid, True)
    if jid.endswith(("@s.whatsapp.net", "@lid")):
        return ChatAddress("whatsapp", jid, False)
    prefix, sep, rest = jid.partition(":")
    if not sep or not rest:
        return ChatAddress("unknown", jid, True)
    channel = _V1_PREFIXES.get(prefix, prefix)
    if channel == "telegram":
        return ChatAddress("telegram", rest, rest.startswith("-"))
    if channel == "slack":
        return ChatAddress("slack", rest, not rest.startswith("D"))
    return ChatAddress(channel, rest, True)


def from_v2(channel_type: str, platform_id: str, is_group: bool) -> ChatAddress:
    """A TypeScript v2 messaging group: strip the Chat SDK prefix (``telegram:42`` → ``42``)."""
    prefix, sep, rest = platform_id.partition(":")
    if sep and rest and prefix == channel_type == "discord":
        return _from_v2_discord(rest, is_group)
    if sep and rest and prefix == channel_type and prefix in _V2_PREFIXED:
        return ChatAddress(channel_type, rest, is_group)
    return ChatAddress(channel_type, platform_id, is_group)


def _from_v2_discord(rest: str, is_group: bool) -> ChatAddress:
    """Chat SDK ``discord:<guild>:<channel>[:<thread>]`` (a DM's guild is ``@me``) → the channel
    id, as the Discord adapter names a chat (a thread is a thread of its parent channel)."""
    guild, sep, tail = rest.partition(":")
    if not sep or not tail:
        return ChatAddress("discord", rest, is_group)
    channel = tail.split(":", 1)[0]
    return ChatAddress("discord", channel, is_group and guild != "@me")


def v1_sender_user_id(channel: str, sender: str) -> str:
    """A v1 sender id as our user id ``<channel>:<handle>``."""
    handle = sender
    for prefix in ("tg:", "dc:", "slack:"):
        if handle.startswith(prefix):
            handle = handle[len(prefix) :]
    if channel == "whatsapp":  # a device-qualified JID (``4915…:12@s.whatsapp.net``) is the person
        user, at, server = handle.partition("@")
        handle = user.partition(":")[0] + at + server
    return f"{channel}:{handle}"
