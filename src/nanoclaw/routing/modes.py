"""The router's vocabulary as enums: engage modes, session modes and drop reasons.

Values are the strings stored in the central DB (``wirings``, ``sessions``,
``dropped_messages``); a ``StrEnum`` member compares equal to its stored string.
"""

from __future__ import annotations

from enum import StrEnum


class EngageMode(StrEnum):
    PATTERN = "pattern"  # the wiring's regex (``.`` means always)
    MENTION = "mention"
    MENTION_STICKY = "mention-sticky"  # a mention, or a follow-up in a group with a session


class SessionMode(StrEnum):
    SHARED = "shared"  # one session per chat
    PER_THREAD = "per-thread"  # one per thread (forced on threaded channels in groups)
    AGENT_SHARED = "agent-shared"  # one per agent across its chats


class DropReason(StrEnum):
    """Why an inbound message reached no agent (recorded in ``dropped_messages``)."""

    UNKNOWN_CHAT = "unknown_chat"
    CHANNEL_DENIED = "channel_denied"
    NO_AGENT_WIRED = "no_agent_wired"
    NO_AGENT_ENGAGED = "no_agent_engaged"
    UNKNOWN_SENDER_REQUEST_APPROVAL = "unknown_sender_request_approval"
    UNKNOWN_SENDER_STRICT = "unknown_sender_strict"
    SENDER_SCOPE = "sender_scope"
    COMMAND_FILTERED = "command_filtered"
    PERMISSION_DENIED = "permission_denied"
    STORAGE_FULL = "storage_full"  # the session's disk is full: a notice, nothing stored
    INTERNAL_ERROR = "internal_error"  # any other failure to store the message


ENGAGE_MODES = tuple(m.value for m in EngageMode)
SESSION_MODES = tuple(m.value for m in SessionMode)
