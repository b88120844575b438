"""Reading a discord.py ``Message``: which chat and thread, whether it engages, its reply context.

A guild text channel is the chat (``platform_id`` = channel id); a thread is a thread of its
parent channel (``thread_id`` = the thread's channel id); a DM is a private chat (its DM
channel id). A guild message engages when it mentions the bot's user, mentions a role the
bot holds (its managed role included), or replies to one of the bot's messages.
"""

from __future__ import annotations

import discord

from nanoclaw.channels.base import ReplyTo

# Message types a person writes (Discord API docs: Message › Message Types 0 and 19).
USER_MESSAGE_TYPES = frozenset({discord.MessageType.default, discord.MessageType.reply})


def is_user_message(message: discord.Message, *, bot_id: int | None) -> bool:
    """Not the bot's own, not another bot's, not a system message (pins, joins, threads)."""
    if message.author.bot or message.author.id == bot_id or message.webhook_id is not None:
        return False
    return message.type in USER_MESSAGE_TYPES


def chat_of(message: discord.Message, *, parent_id: int | None) -> tuple[str, str | None]:
    """(platform id, thread id): a thread's parent channel and the thread, else the channel."""
    if parent_id is not None:
        return str(parent_id), str(message.channel.id)
    return str(message.channel.id), None


def bot_role_ids(message: discord.Message) -> set[int]:
    """The roles the bot holds in the message's guild (its managed role among them)."""
    guild = message.guild
    if guild is None:
        return set()
    found = {r.id for r in guild.me.roles} if guild.me is not None else set()
    if guild.self_role is not None:
        found.add(guild.self_role.id)
    found.discard(guild.id)  # @everyone is every member's role, not a mention of the bot
    return found


def mentions_bot(message: discord.Message, *, bot_id: int | None) -> bool:
    if bot_id is not None and bot_id in message.raw_mentions:
        return True
    if set(message.raw_role_mentions) & bot_role_ids(message):
        return True
    replied = replied_message(message)
    return replied is not None and bot_id is not None and replied.author.id == bot_id


def replied_message(message: discord.Message) -> discord.Message | None:
    ref = message.reference
    if ref is None or not isinstance(ref.resolved, discord.Message):
        return None
    return ref.resolved


def reply_of(message: discord.Message) -> ReplyTo | None:
    """The replied-to message (id, its text, its author), if the message is a reply."""
    ref = message.reference
    if ref is None or ref.message_id is None or message.type != discord.MessageType.reply:
        return None
    replied = replied_message(message)
    if replied is None:  # deleted, or Discord did not resolve it
        return ReplyTo(id=str(ref.message_id))
    return ReplyTo(
        id=str(ref.message_id),
        text=replied.content or None,
        sender=replied.author.display_name,
    )
