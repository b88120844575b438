"""Schemas of ``inbound.db`` (host writes) and ``outbound.db`` (runner writes).

Seq parity (invariant 3) is a CHECK constraint, not a convention: an odd seq cannot
enter ``messages_in`` and an even one cannot enter ``messages_out``. Each file has its own
Alembic environment (``migrations/inbound``, ``migrations/outbound``).
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, Float, Integer, MetaData, String, Table, Text

from nanoclaw.db.models import NAMING

inbound_metadata = MetaData(naming_convention=NAMING)
outbound_metadata = MetaData(naming_convention=NAMING)

INBOUND_KINDS = ("chat", "task", "webhook", "system")
INBOUND_STATUSES = ("pending", "completed", "failed", "paused")

messages_in = Table(
    "messages_in",
    inbound_metadata,
    Column("id", String(256), primary_key=True),
    Column("seq", Integer, nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("timestamp", String(32), nullable=False),
    Column("status", String(16), nullable=False, server_default="pending"),
    Column("process_after", String(32)),
    Column("recurrence", String(128)),
    Column("series_id", String(256)),
    Column("tries", Integer, nullable=False, server_default="0"),
    Column("trigger", Integer, nullable=False, server_default="1"),
    Column("channel_type", String(32)),
    Column("platform_id", String(256)),
    Column("thread_id", String(256)),
    Column("content", Text, nullable=False),
    Column("source_session_id", String(64)),
    Column("on_wake", Integer, nullable=False, server_default="0"),
    # Recurring tasks: the IANA zone the cron is evaluated in (NULL = the host's) and the
    # catch-up policy after downtime ('once' when NULL, or 'skip'); see nanoclaw.scheduling.
    Column("recurrence_tz", String(64)),
    Column("catch_up", String(8)),
    CheckConstraint("seq % 2 = 0 AND seq >= 2", name="seq_even"),
    CheckConstraint(f"kind IN {INBOUND_KINDS!r}", name="kind"),
    CheckConstraint(f"status IN {INBOUND_STATUSES!r}", name="status"),
    CheckConstraint("trigger IN (0, 1)", name="trigger"),
)

delivered = Table(
    "delivered",
    inbound_metadata,
    Column("message_out_id", String(256), primary_key=True),
    Column("platform_message_id", String(256)),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    Column("next_attempt_at", String(32)),
    Column("delivered_at", String(32)),
    CheckConstraint("status IN ('delivered', 'failed', 'retrying')", name="status"),
)

destinations = Table(
    "destinations",
    inbound_metadata,
    Column("name", String(128), primary_key=True),
    Column("display_name", String(256)),
    Column("type", String(16), nullable=False),
    Column("channel_type", String(32)),
    Column("platform_id", String(256)),
    Column("agent_group_id", String(64)),
    CheckConstraint("type IN ('channel', 'agent')", name="type"),
)

session_routing = Table(
    "session_routing",
    inbound_metadata,
    Column("id", Integer, primary_key=True),
    Column("channel_type", String(32)),
    Column("platform_id", String(256)),
    Column("thread_id", String(256)),
    CheckConstraint("id = 1", name="single_row"),
)

messages_out = Table(
    "messages_out",
    outbound_metadata,
    Column("id", String(256), primary_key=True),
    Column("seq", Integer, nullable=False, unique=True),
    Column("in_reply_to", String(256)),
    Column("timestamp", String(32), nullable=False),
    Column("deliver_after", String(32)),
    Column("kind", String(16), nullable=False),
    Column("channel_type", String(32)),
    Column("platform_id", String(256)),
    Column("thread_id", String(256)),
    Column("content", Text, nullable=False),
    CheckConstraint("seq % 2 = 1", name="seq_odd"),
    CheckConstraint("kind IN ('chat', 'system')", name="kind"),
)

processing_ack = Table(
    "processing_ack",
    outbound_metadata,
    Column("message_id", String(256), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("status_changed", String(32), nullable=False),
    CheckConstraint("status IN ('processing', 'completed', 'failed')", name="status"),
)

session_state = Table(
    "session_state",
    outbound_metadata,
    Column("key", String(128), primary_key=True),
    Column("value", Text, nullable=False),
)

runner_state = Table(
    "runner_state",
    outbound_metadata,
    Column("id", Integer, primary_key=True),
    Column("pid", Integer),
    Column("started_at", String(32)),
    Column("current_tool", String(64)),
    Column("tool_declared_timeout_ms", Integer),
    Column("tool_started_at", String(32)),
    CheckConstraint("id = 1", name="single_row"),
)

# The agent's conversation (continuity): one row per message of the Messages API, oldest first.
# ``role = 'summary'`` holds the compacted summary of every turn before it.
transcript = Table(
    "transcript",
    outbound_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("turn_id", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("content", Text, nullable=False),
    Column("created_at", String(32), nullable=False),
    CheckConstraint("role IN ('user', 'assistant', 'summary')", name="role"),
)

# Tokens and cost per turn, written by the runner; the host copies new rows into the central DB.
usage = Table(
    "usage",
    outbound_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("turn_id", String(64), nullable=False),
    Column("model", String(128), nullable=False),
    Column("input_tokens", Integer, nullable=False, server_default="0"),
    Column("output_tokens", Integer, nullable=False, server_default="0"),
    Column("cache_read_tokens", Integer, nullable=False, server_default="0"),
    Column("cache_write_tokens", Integer, nullable=False, server_default="0"),
    Column("cost_usd", Float, nullable=False, server_default="0"),
    Column("message_ids", Text, nullable=False, server_default="[]"),
    Column("created_at", String(32), nullable=False),
)
