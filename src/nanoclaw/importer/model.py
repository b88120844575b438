"""What an import carries, whatever the source: agents, chats, wirings, users, tasks, env, notes."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path


class SourceKind(enum.StrEnum):
    V1 = "v1"
    V2 = "v2"  # the TypeScript NanoClaw v2


class TaskSchedule(enum.StrEnum):
    CRON = "cron"
    INTERVAL = "interval"
    ONCE = "once"


@dataclass(frozen=True)
class SourceInstall:
    root: Path
    kind: SourceKind
    db_path: Path


@dataclass(frozen=True)
class AgentSpec:
    key: str  # the source's own id (v1: the group folder; v2: the agent group id)
    name: str
    folder: str  # the source folder name under groups/
    is_main: bool = False
    admin_scope: str | None = None
    mounts: tuple[dict[str, object], ...] = ()
    memory_file: str = "CLAUDE.md"  # the source file that holds the agent's own memory


@dataclass(frozen=True)
class ChatSpec:
    channel: str
    platform_id: str
    name: str
    is_group: bool
    policy: str = "strict"

    @property
    def ref(self) -> str:
        return f"{self.channel}/{self.platform_id}"


@dataclass(frozen=True)
class WiringSpec:
    agent_key: str
    chat_ref: str
    engage_mode: str
    engage_pattern: str | None
    session_mode: str = "shared"
    sender_scope: str = "all"
    ignored_message_policy: str = "drop"
    priority: int = 0


@dataclass(frozen=True)
class UserSpec:
    user_id: str
    display_name: str | None
    messages: int = 0


@dataclass(frozen=True)
class RoleSpec:
    user_id: str
    role: str
    agent_key: str | None = None


@dataclass(frozen=True)
class DestinationSpec:
    agent_key: str
    name: str
    target_type: str  # "channel" | "agent"
    target: str  # a chat ref or an agent key


@dataclass(frozen=True)
class TaskSpec:
    source_id: str
    agent_key: str
    chat_ref: str | None
    prompt: str
    schedule: TaskSchedule
    value: str  # cron expression, interval in seconds, or the ISO time of a once task
    next_run: str | None  # UTC ISO
    paused: bool = False
    script: str | None = None
    isolated: bool = False
    timezone: str | None = None


@dataclass
class SourceModel:
    """Everything read from the source; ``problems`` holds what could not be read, per step."""

    install: SourceInstall
    agents: list[AgentSpec] = field(default_factory=list)
    chats: list[ChatSpec] = field(default_factory=list)
    wirings: list[WiringSpec] = field(default_factory=list)
    users: list[UserSpec] = field(default_factory=list)
    roles: list[RoleSpec] = field(default_factory=list)
    members: list[tuple[str, str]] = field(default_factory=list)  # (user id, agent key)
    destinations: list[DestinationSpec] = field(default_factory=list)
    tasks: list[TaskSpec] = field(default_factory=list)
    skipped_tasks: list[tuple[str, str]] = field(default_factory=list)  # (task id, why)
    env: dict[str, str] = field(default_factory=dict)
    timezone: str | None = None
    problems: list[tuple[str, str]] = field(default_factory=list)  # (step, what failed)
    todo: list[str] = field(default_factory=list)  # what the user must still do
