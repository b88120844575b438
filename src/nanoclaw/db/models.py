"""The entity model (upstream §1): users → messaging groups → wirings → agent groups → sessions.

Enumerated columns carry CHECK constraints so a bad value cannot be stored by any writer,
and the Python ``Literal`` types below name the same values for the code.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal, get_args

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from nanoclaw.contract.timeutil import utc_now
from nanoclaw.db.types import UTCDateTime

EngageMode = Literal["pattern", "mention", "mention-sticky"]
SessionMode = Literal["shared", "per-thread", "agent-shared"]
SenderScope = Literal["all", "known"]
IgnoredMessagePolicy = Literal["drop", "accumulate"]
UnknownSenderPolicy = Literal["strict", "request_approval", "public"]
RoleName = Literal["owner", "admin"]
AdminScope = Literal["disabled", "group", "global"]
DropReason = Literal[
    "no_agent_wired",
    "no_agent_engaged",
    "unknown_sender_strict",
    "unknown_sender_request_approval",
    "sender_scope",
    "channel_denied",
]
NetworkMode = Literal["none", "open"]

FOLDER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
RESERVED_FOLDERS = frozenset({"global"})

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _in(column: str, literal: object) -> str:
    values = ", ".join(f"'{v}'" for v in get_args(literal))
    return f"{column} IN ({values})"


class CentralBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class AgentGroup(CentralBase):
    __tablename__ = "agent_groups"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    folder: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class MessagingGroup(CentralBase):
    __tablename__ = "messaging_groups"
    __table_args__ = (
        UniqueConstraint("channel_type", "platform_id"),
        CheckConstraint(_in("unknown_sender_policy", UnknownSenderPolicy), name="policy"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    channel_type: Mapped[str] = mapped_column(String(32))
    platform_id: Mapped[str] = mapped_column(String(256))
    name: Mapped[str | None] = mapped_column(String(256))
    is_group: Mapped[bool] = mapped_column(Boolean, default=False)
    unknown_sender_policy: Mapped[str] = mapped_column(String(32), default="strict")
    denied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class Wiring(CentralBase):
    __tablename__ = "wirings"
    __table_args__ = (
        UniqueConstraint("messaging_group_id", "agent_group_id"),
        CheckConstraint(_in("engage_mode", EngageMode), name="engage_mode"),
        CheckConstraint(_in("sender_scope", SenderScope), name="sender_scope"),
        CheckConstraint(_in("ignored_message_policy", IgnoredMessagePolicy), name="ignored"),
        CheckConstraint(_in("session_mode", SessionMode), name="session_mode"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    messaging_group_id: Mapped[str] = mapped_column(
        ForeignKey("messaging_groups.id", ondelete="CASCADE"), index=True
    )
    agent_group_id: Mapped[str] = mapped_column(
        ForeignKey("agent_groups.id", ondelete="CASCADE"), index=True
    )
    engage_mode: Mapped[str] = mapped_column(String(16), default="mention")
    engage_pattern: Mapped[str | None] = mapped_column(String(512))
    sender_scope: Mapped[str] = mapped_column(String(8), default="all")
    ignored_message_policy: Mapped[str] = mapped_column(String(16), default="drop")
    session_mode: Mapped[str] = mapped_column(String(16), default="shared")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class User(CentralBase):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(256), primary_key=True)  # "<channel_type>:<handle>"
    kind: Mapped[str] = mapped_column(String(32))
    display_name: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class UserRole(CentralBase):
    __tablename__ = "user_roles"
    __table_args__ = (
        CheckConstraint(_in("role", RoleName), name="role"),
        # The owner is global (checked in code too); one grant per (user, role, scope).
        CheckConstraint("role != 'owner' OR agent_group_id IS NULL", name="owner_global"),
        Index(
            "uq_user_roles_grant",
            "user_id",
            "role",
            func.coalesce("agent_group_id", ""),
            unique=True,
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    agent_group_id: Mapped[str | None] = mapped_column(
        ForeignKey("agent_groups.id", ondelete="CASCADE")
    )
    granted_by: Mapped[str | None] = mapped_column(String(256))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class AgentGroupMember(CentralBase):
    __tablename__ = "agent_group_members"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    agent_group_id: Mapped[str] = mapped_column(
        ForeignKey("agent_groups.id", ondelete="CASCADE"), primary_key=True
    )
    added_by: Mapped[str | None] = mapped_column(String(256))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class SessionRow(CentralBase):
    __tablename__ = "sessions"
    __table_args__ = (
        CheckConstraint(_in("session_mode", SessionMode), name="session_mode"),
        CheckConstraint("status IN ('active', 'closed')", name="status"),
        CheckConstraint("runner_status IN ('running', 'stopped')", name="runner_status"),
        Index("ix_sessions_lookup", "agent_group_id", "messaging_group_id", "thread_id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_group_id: Mapped[str] = mapped_column(ForeignKey("agent_groups.id", ondelete="CASCADE"))
    messaging_group_id: Mapped[str | None] = mapped_column(
        ForeignKey("messaging_groups.id", ondelete="SET NULL")
    )
    thread_id: Mapped[str | None] = mapped_column(String(256))
    session_mode: Mapped[str] = mapped_column(String(16), default="shared")
    status: Mapped[str] = mapped_column(String(16), default="active")
    runner_status: Mapped[str] = mapped_column(String(16), default="stopped")
    last_exit_code: Mapped[int | None] = mapped_column(Integer)
    last_exit_log: Mapped[str | None] = mapped_column(Text)
    last_active: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class AgentDestination(CentralBase):
    """Name map and ACL: the row's existence is the permission to send there."""

    __tablename__ = "agent_destinations"
    __table_args__ = (CheckConstraint("target_type IN ('channel', 'agent')", name="target_type"),)

    agent_group_id: Mapped[str] = mapped_column(
        ForeignKey("agent_groups.id", ondelete="CASCADE"), primary_key=True
    )
    local_name: Mapped[str] = mapped_column(String(128), primary_key=True)
    target_type: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class ContainerConfig(CentralBase):
    """Per agent group sandbox and model configuration (source of truth for runner.json)."""

    __tablename__ = "container_configs"
    __table_args__ = (
        CheckConstraint(_in("admin_scope", AdminScope), name="admin_scope"),
        CheckConstraint(_in("network", NetworkMode), name="network"),
    )

    agent_group_id: Mapped[str] = mapped_column(
        ForeignKey("agent_groups.id", ondelete="CASCADE"), primary_key=True
    )
    provider: Mapped[str | None] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(128))
    assistant_name: Mapped[str | None] = mapped_column(String(128))
    max_messages_per_prompt: Mapped[int | None] = mapped_column(Integer)
    runtime: Mapped[str | None] = mapped_column(String(16))
    network: Mapped[str] = mapped_column(String(8), default="none")
    admin_scope: Mapped[str] = mapped_column(String(16), default="group")
    web_tools: Mapped[bool] = mapped_column(Boolean, default=False)
    packages_apt: Mapped[str] = mapped_column(Text, default="[]")
    packages_pip: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    # The last package build's outcome, shown by ``nanoclaw agents packages list``.
    packages_status: Mapped[str | None] = mapped_column(Text)
    # ``{"<name>": {"command", "args", "env"}}`` (``nanoclaw.contract.mcp``).
    mcp_servers: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    additional_mounts: Mapped[str] = mapped_column(Text, default="[]")
    image_tag: Mapped[str | None] = mapped_column(String(256))
    # Model limits (None = the runner's defaults) and the optional daily spending cap.
    max_output_tokens: Mapped[int | None] = mapped_column(Integer)
    context_limit_tokens: Mapped[int | None] = mapped_column(Integer)
    max_tool_iterations: Mapped[int | None] = mapped_column(Integer)
    daily_budget_usd: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now, onupdate=utc_now)


class DroppedMessage(CentralBase):
    """The drop audit: one row per (chat, sender, reason), its count bumped on every repeat."""

    __tablename__ = "dropped_messages"
    __table_args__ = (
        CheckConstraint(_in("reason", DropReason), name="reason"),
        UniqueConstraint("channel_type", "platform_id", "sender_key", "reason"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel_type: Mapped[str] = mapped_column(String(32))
    platform_id: Mapped[str] = mapped_column(String(256))
    sender_key: Mapped[str] = mapped_column(String(256), default="")
    user_id: Mapped[str | None] = mapped_column(String(256))
    sender_name: Mapped[str | None] = mapped_column(String(256))
    reason: Mapped[str] = mapped_column(String(64))
    messaging_group_id: Mapped[str | None] = mapped_column(String(64))
    agent_group_id: Mapped[str | None] = mapped_column(String(64))
    last_text: Mapped[str | None] = mapped_column(String(280))
    message_count: Mapped[int] = mapped_column(Integer, default=1)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


ApprovalKind = Literal["sender", "channel", "action"]
ApprovalStatus = Literal["pending", "approved", "denied", "expired"]


class PendingApproval(CentralBase):
    """An approval card: unknown sender, unwired chat registration, or a gated host action.

    ``dedup_key`` is set only while the row is pending (``sender:<mg>:<user>`` or
    ``channel:<mg>``); its UNIQUE constraint keeps one open request per sender and chat,
    and per chat. It is cleared when the request is decided or expires.
    """

    __tablename__ = "pending_approvals"
    __table_args__ = (
        CheckConstraint(_in("kind", ApprovalKind), name="kind"),
        CheckConstraint(_in("status", ApprovalStatus), name="status"),
        Index("ix_pending_approvals_card", "card_channel_type", "card_platform_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    dedup_key: Mapped[str | None] = mapped_column(String(600), unique=True)
    stage: Mapped[str | None] = mapped_column(
        String(32)
    )  # e.g. "name" while awaiting a new agent's name
    messaging_group_id: Mapped[str | None] = mapped_column(String(64))
    agent_group_id: Mapped[str | None] = mapped_column(String(64))
    session_id: Mapped[str | None] = mapped_column(String(64))
    requester_user_id: Mapped[str | None] = mapped_column(String(256))
    approver_user_id: Mapped[str | None] = mapped_column(String(256))
    action: Mapped[str | None] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(256))
    question: Mapped[str] = mapped_column(Text)
    options_json: Mapped[str] = mapped_column(Text, default="[]")
    payload_json: Mapped[str] = mapped_column(Text, default="{}")
    card_channel_type: Mapped[str | None] = mapped_column(String(32))
    card_platform_id: Mapped[str | None] = mapped_column(String(256))
    card_message_id: Mapped[str | None] = mapped_column(String(256))
    decided_by: Mapped[str | None] = mapped_column(String(256))
    decision: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class UserDm(CentralBase):
    """Cold-DM cache: where to reach a user privately on one channel."""

    __tablename__ = "user_dms"

    user_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    channel_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    messaging_group_id: Mapped[str] = mapped_column(
        ForeignKey("messaging_groups.id", ondelete="CASCADE")
    )
    resolved_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class UsageTurn(CentralBase):
    """Tokens and cost of one turn, copied from a session's ``outbound.db`` (idempotent per row)."""

    __tablename__ = "usage_turns"
    __table_args__ = (
        UniqueConstraint("session_id", "runner_row_id"),
        Index("ix_usage_turns_group_day", "agent_group_id", "day"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(String(64))
    agent_group_id: Mapped[str] = mapped_column(String(64))
    runner_row_id: Mapped[int] = mapped_column(Integer)  # ``usage.id`` in the session's outbound.db
    day: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD in the host's time zone
    model: Mapped[str] = mapped_column(String(128))
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_read_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_write_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)


NoticeStatus = Literal["pending", "sent", "failed"]


class HostNotice(CentralBase):
    """A notice the host owes a chat (a failure, a denial, a budget stop), retried until sent."""

    __tablename__ = "host_notices"
    __table_args__ = (
        CheckConstraint(_in("status", NoticeStatus), name="status"),
        Index("ix_host_notices_status_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel_type: Mapped[str] = mapped_column(String(32))
    platform_id: Mapped[str] = mapped_column(String(256))
    thread_id: Mapped[str | None] = mapped_column(String(256))
    text: Mapped[str] = mapped_column(Text)
    failure: Mapped[str | None] = mapped_column(String(32))  # the notice replaces a lost answer
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class QuarantinedSession(CentralBase):
    """A session whose sandbox-writable files failed the confined-open probe (invariant 6).

    The host no longer opens its files, starts its runner or delivers its rows; its pending
    messages end ``failed`` with a notice. ``nanoclaw status`` lists it.
    """

    __tablename__ = "quarantined_sessions"

    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    )
    problem: Mapped[str] = mapped_column(String(32))
    cause: Mapped[str] = mapped_column(Text)
    quarantined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class UnhandledMessage(CentralBase):
    """An accepted inbound message the host could not hand to any session (the router failed).

    Kept for the operator (``nanoclaw messages failed``); its sender was told.
    """

    __tablename__ = "unhandled_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel_type: Mapped[str] = mapped_column(String(32))
    platform_id: Mapped[str] = mapped_column(String(256))
    thread_id: Mapped[str | None] = mapped_column(String(256))
    message_id: Mapped[str] = mapped_column(String(256))
    sender: Mapped[str] = mapped_column(String(256))
    text: Mapped[str] = mapped_column(Text)
    error: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class CliReply(CentralBase):
    """A reply for a terminal chat, kept until a client acknowledges it (``delivered_at``)."""

    __tablename__ = "cli_replies"
    __table_args__ = (
        Index("ix_cli_replies_chat_delivered", "chat", "delivered_at", "id"),
        Index("ux_cli_replies_delivery_key", "delivery_key", unique=True),
        {"sqlite_autoincrement": True},  # ids never reused: "cli-<id>" names one reply for good
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    chat: Mapped[str] = mapped_column(String(64))
    frame: Mapped[str] = mapped_column(Text)  # the reply frame's JSON, without its id
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The outbound row it came from (``OutboundPayload.delivery_key``): a re-send is not stored twice.
    delivery_key: Mapped[str | None] = mapped_column(String(160))


class CliChatState(CentralBase):
    """Per terminal chat: how many unacknowledged replies the bound dropped since the last client."""

    __tablename__ = "cli_chat_state"

    chat: Mapped[str] = mapped_column(String(64), primary_key=True)
    dropped: Mapped[int] = mapped_column(Integer, default=0)
