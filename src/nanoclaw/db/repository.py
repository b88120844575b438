"""Queries and writes on the entity model, each in its own short transaction."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from nanoclaw.contract.timeutil import utc_now
from nanoclaw.db.central import CentralDB
from nanoclaw.db.models import (
    FOLDER_RE,
    RESERVED_FOLDERS,
    AgentDestination,
    AgentGroup,
    AgentGroupMember,
    ContainerConfig,
    DroppedMessage,
    MessagingGroup,
    SessionRow,
    User,
    UserRole,
    Wiring,
)
from nanoclaw.errors import NotFoundError, ValidationError
from nanoclaw.ids import new_id


class DestinationTarget(NamedTuple):
    """One agent destination and, for a channel one, the chat it names (None if it is gone)."""

    local_name: str
    target_type: str
    target_id: str
    chat_id: str | None
    chat_name: str | None
    channel_type: str | None
    platform_id: str | None


# The columns of DestinationTarget, in order. A lone SELECT is its own read transaction.
_DESTINATION_TARGETS_SQL = (
    "SELECT d.local_name, d.target_type, d.target_id, m.id, m.name, m.channel_type,"
    " m.platform_id FROM agent_destinations AS d LEFT JOIN messaging_groups AS m"
    " ON d.target_type = 'channel' AND m.id = d.target_id"
    " WHERE d.agent_group_id = ? ORDER BY d.local_name"
)


def validate_folder(folder: str) -> str:
    if not FOLDER_RE.fullmatch(folder) or folder.lower() in RESERVED_FOLDERS:
        raise ValidationError(
            f"invalid agent folder {folder!r}: use 1–64 letters, digits, '_' or '-', "
            "starting with a letter or digit ('global' is reserved)",
            field="folder",
        )
    return folder


def normalize_destination_name(raw: str) -> str:
    """Lowercase; runs of anything but ``[a-z0-9]`` become ``-``; ``unnamed`` if nothing is left."""
    name = re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-")
    return name or "unnamed"


@dataclass(frozen=True)
class Membership:
    """A user's roles and memberships, the input of the pure access checks."""

    user_id: str
    roles: tuple[tuple[str, str | None], ...]  # (role, agent_group_id or None for global)
    member_of: frozenset[str]


@dataclass(frozen=True)
class SessionKey:
    """What ``find_session`` matches on: the session one wiring routes one message to."""

    agent_group_id: str
    messaging_group_id: str | None
    thread_id: str | None
    mode: str


@dataclass(frozen=True)
class NewChat:
    """How to register a chat the central DB does not know yet (a mention in a new chat)."""

    is_group: bool
    unknown_sender_policy: str


@dataclass(frozen=True)
class RouteFacts:
    """The central-DB facts one message is routed by (``Repository.route_facts``)."""

    messaging_group: MessagingGroup | None
    membership: Membership | None
    wirings: tuple[Wiring, ...] = ()
    sessions: Mapping[SessionKey, SessionRow | None] = field(default_factory=dict)
    folders: Mapping[str, str] = field(default_factory=dict)  # agent group id → folder


@dataclass(frozen=True)
class DropRecord:
    """One message no agent got, for the drop audit (``dropped_messages``)."""

    channel_type: str
    platform_id: str
    reason: str
    user_id: str | None = None
    sender_name: str | None = None
    messaging_group_id: str | None = None
    agent_group_id: str | None = None
    text: str | None = None


class Repository:
    def __init__(self, db: CentralDB) -> None:
        self.db = db

    # -- agent groups -----------------------------------------------------------------------
    def create_agent_group(
        self, *, name: str, folder: str, assistant_name: str | None = None
    ) -> AgentGroup:
        validate_folder(folder)
        with self.db.session() as s:
            if s.scalar(select(AgentGroup).where(AgentGroup.folder == folder)):
                raise ValidationError(f"agent folder {folder!r} is taken", field="folder")
            group = AgentGroup(id=new_id("ag"), name=name, folder=folder)
            s.add(group)
            s.flush()
            s.add(ContainerConfig(agent_group_id=group.id, assistant_name=assistant_name or name))
        return group

    def agent_groups(self) -> list[AgentGroup]:
        with self.db.session() as s:
            return list(s.scalars(select(AgentGroup).order_by(AgentGroup.created_at)))

    def agent_group(self, key: str) -> AgentGroup:
        """By id, folder or (case-insensitive) name."""
        with self.db.session() as s:
            group = s.get(AgentGroup, key) or s.scalar(
                select(AgentGroup).where(
                    (AgentGroup.folder == key) | (func.lower(AgentGroup.name) == key.lower())
                )
            )
        if group is None:
            raise NotFoundError("agent group", key)
        return group

    def container_config(self, agent_group_id: str) -> ContainerConfig:
        with self.db.session() as s:
            config = s.get(ContainerConfig, agent_group_id)
            if config is None:
                config = ContainerConfig(agent_group_id=agent_group_id)
                s.add(config)
        return config

    def set_admin_scope(self, agent_group_id: str, scope: str) -> None:
        """``disabled`` | ``group`` | ``global`` (a CHECK constraint rejects anything else)."""
        with self.db.session() as s:
            config = s.get(ContainerConfig, agent_group_id)
            if config is None:
                config = ContainerConfig(agent_group_id=agent_group_id)
                s.add(config)
            config.admin_scope = scope

    # -- messaging groups and wirings ---------------------------------------------------------
    def messaging_group(self, channel_type: str, platform_id: str) -> MessagingGroup | None:
        with self.db.session() as s:
            return s.scalar(
                select(MessagingGroup).where(
                    MessagingGroup.channel_type == channel_type,
                    MessagingGroup.platform_id == platform_id,
                )
            )

    def messaging_group_by_id(self, mg_id: str) -> MessagingGroup | None:
        with self.db.session() as s:
            return s.get(MessagingGroup, mg_id)

    def messaging_groups_by_ids(self, mg_ids: Collection[str]) -> dict[str, MessagingGroup]:
        """The messaging groups among ``mg_ids`` that exist, by id (one query)."""
        if not mg_ids:
            return {}
        with self.db.session() as s:
            found = s.scalars(select(MessagingGroup).where(MessagingGroup.id.in_(list(mg_ids))))
            return {mg.id: mg for mg in found}

    def ensure_messaging_group(
        self,
        *,
        channel_type: str,
        platform_id: str,
        name: str | None = None,
        is_group: bool = False,
        unknown_sender_policy: str = "strict",
    ) -> MessagingGroup:
        with self.db.session() as s:
            found = s.scalar(
                select(MessagingGroup).where(
                    MessagingGroup.channel_type == channel_type,
                    MessagingGroup.platform_id == platform_id,
                )
            )
            if found is not None:
                return found
            group = MessagingGroup(
                id=new_id("mg"),
                channel_type=channel_type,
                platform_id=platform_id,
                name=name,
                is_group=is_group,
                unknown_sender_policy=unknown_sender_policy,
            )
            s.add(group)
        return group

    def move_messaging_group(
        self, channel_type: str, old_platform_id: str, new_platform_id: str
    ) -> list[str]:
        """A chat that changed its platform id (a Telegram group upgraded to a supergroup).

        The messaging group keeps its id, wirings and sessions; only its address changes. A
        group already recorded at the new address with no wirings (made by a mention before
        the move was seen) is replaced. Returns the agent groups wired to the chat.
        """
        with self.db.session() as s:
            old = s.scalar(
                select(MessagingGroup).where(
                    MessagingGroup.channel_type == channel_type,
                    MessagingGroup.platform_id == old_platform_id,
                )
            )
            if old is None:
                return []
            new = s.scalar(
                select(MessagingGroup).where(
                    MessagingGroup.channel_type == channel_type,
                    MessagingGroup.platform_id == new_platform_id,
                )
            )
            if new is not None:
                wired = s.scalar(
                    select(func.count())
                    .select_from(Wiring)
                    .where(Wiring.messaging_group_id == new.id)
                )
                if wired:
                    raise ValidationError(
                        f"{channel_type}/{new_platform_id} is already wired; not merging",
                        field="platform_id",
                    )
                s.delete(new)
                s.flush()
            old.platform_id = new_platform_id
            old.is_group = True
            agents = s.scalars(
                select(Wiring.agent_group_id).where(Wiring.messaging_group_id == old.id)
            )
            return sorted(set(agents))

    def set_unknown_sender_policy(self, messaging_group_id: str, policy: str) -> None:
        with self.db.session() as s:
            mg = s.get(MessagingGroup, messaging_group_id)
            if mg is None:
                raise NotFoundError("messaging group", messaging_group_id)
            mg.unknown_sender_policy = policy

    def messaging_groups(self) -> list[MessagingGroup]:
        with self.db.session() as s:
            return list(s.scalars(select(MessagingGroup).order_by(MessagingGroup.created_at)))

    def wirings_for(self, messaging_group_id: str) -> list[Wiring]:
        """Wirings of a chat, highest priority first (ties: oldest first)."""
        with self.db.session() as s:
            return list(
                s.scalars(
                    select(Wiring)
                    .where(Wiring.messaging_group_id == messaging_group_id)
                    .order_by(Wiring.priority.desc(), Wiring.created_at)
                )
            )

    def wirings(self) -> list[Wiring]:
        with self.db.session() as s:
            return list(s.scalars(select(Wiring).order_by(Wiring.created_at)))

    def create_wiring(
        self,
        *,
        messaging_group_id: str,
        agent_group_id: str,
        engage_mode: str = "mention",
        engage_pattern: str | None = None,
        sender_scope: str = "all",
        ignored_message_policy: str = "drop",
        session_mode: str = "shared",
        priority: int = 0,
    ) -> Wiring:
        """Wire a chat to an agent and give the agent a channel destination for it."""
        with self.db.session() as s:
            mg = s.get(MessagingGroup, messaging_group_id)
            if mg is None:
                raise NotFoundError("messaging group", messaging_group_id)
            if s.get(AgentGroup, agent_group_id) is None:
                raise NotFoundError("agent group", agent_group_id)
            existing = s.scalar(
                select(Wiring).where(
                    Wiring.messaging_group_id == messaging_group_id,
                    Wiring.agent_group_id == agent_group_id,
                )
            )
            if existing is not None:
                raise ValidationError("that chat is already wired to that agent", field="wiring")
            wiring = Wiring(
                id=new_id("wire"),
                messaging_group_id=messaging_group_id,
                agent_group_id=agent_group_id,
                engage_mode=engage_mode,
                engage_pattern=engage_pattern,
                sender_scope=sender_scope,
                ignored_message_policy=ignored_message_policy,
                session_mode=session_mode,
                priority=priority,
            )
            s.add(wiring)
            self._ensure_channel_destination(s, agent_group_id, mg)
        return wiring

    def delete_wiring(self, wiring_id: str) -> None:
        with self.db.session() as s:
            wiring = s.get(Wiring, wiring_id)
            if wiring is None:
                raise NotFoundError("wiring", wiring_id)
            s.delete(wiring)

    def _ensure_channel_destination(
        self, s: Session, agent_group_id: str, mg: MessagingGroup
    ) -> AgentDestination:
        existing = s.scalar(
            select(AgentDestination).where(
                AgentDestination.agent_group_id == agent_group_id,
                AgentDestination.target_type == "channel",
                AgentDestination.target_id == mg.id,
            )
        )
        if existing is not None:
            return existing
        base = normalize_destination_name(mg.name or f"{mg.channel_type}-{mg.id[-8:]}")
        taken = set(
            s.scalars(
                select(AgentDestination.local_name).where(
                    AgentDestination.agent_group_id == agent_group_id
                )
            )
        )
        name, n = base, 2
        while name in taken:
            name, n = f"{base}-{n}", n + 1
        dest = AgentDestination(
            agent_group_id=agent_group_id, local_name=name, target_type="channel", target_id=mg.id
        )
        s.add(dest)
        return dest

    def destinations(self, agent_group_id: str) -> list[AgentDestination]:
        with self.db.session() as s:
            return list(
                s.scalars(
                    select(AgentDestination)
                    .where(AgentDestination.agent_group_id == agent_group_id)
                    .order_by(AgentDestination.local_name)
                )
            )

    def destination_targets(self, agent_group_id: str) -> list[DestinationTarget]:
        """The agent's destinations with the chat each channel one names, in one query.

        Read through the driver (plain tuples, no ORM or Core rows): a session's projection
        reads them all at creation, and an agent can be wired to a thousand chats.
        """
        with self.db.engine.connect() as conn:
            driver = conn.connection.driver_connection
            assert driver is not None  # a live pooled connection
            cursor = driver.execute(_DESTINATION_TARGETS_SQL, (agent_group_id,))
            try:
                return [DestinationTarget._make(row) for row in cursor]
            finally:
                cursor.close()

    def add_agent_destination(self, *, agent_group_id: str, name: str, target_id: str) -> None:
        with self.db.session() as s:
            s.merge(
                AgentDestination(
                    agent_group_id=agent_group_id,
                    local_name=normalize_destination_name(name),
                    target_type="agent",
                    target_id=target_id,
                )
            )

    # -- users and roles -----------------------------------------------------------------------
    def upsert_user(self, user_id: str, *, kind: str, display_name: str | None) -> Membership:
        """Create or rename the user; return its roles and memberships (one transaction)."""
        with self.db.session() as s:
            return self._upsert_user(s, user_id, kind=kind, display_name=display_name)

    @classmethod
    def _upsert_user(
        cls, s: Session, user_id: str, *, kind: str, display_name: str | None
    ) -> Membership:
        user = s.get(User, user_id)
        if user is None:
            s.add(User(id=user_id, kind=kind, display_name=display_name))
        elif display_name and user.display_name != display_name:
            user.display_name = display_name
        return cls._membership(s, user_id)

    def route_facts(
        self,
        channel_type: str,
        platform_id: str,
        *,
        user_id: str | None,
        user_kind: str,
        display_name: str | None,
        new_chat: NewChat | None = None,
        session_key: Callable[[MessagingGroup, Wiring], SessionKey] | None = None,
    ) -> RouteFacts:
        """What the router decides from, read in one transaction: the chat's messaging group,
        the sender (created or renamed; its roles and memberships), the chat's wirings
        (highest priority first), each wiring's active session under ``session_key`` and the
        wired agents' folders.

        An unknown chat writes nothing (no user is created for it) unless ``new_chat`` says
        how to register it; a chat registered here has no wirings yet."""
        with self.db.session() as s:
            mg = s.scalar(
                select(MessagingGroup).where(
                    MessagingGroup.channel_type == channel_type,
                    MessagingGroup.platform_id == platform_id,
                )
            )
            if mg is None and new_chat is None:
                return RouteFacts(None, None)
            membership = None
            if user_id is not None:
                membership = self._upsert_user(
                    s, user_id, kind=user_kind, display_name=display_name
                )
            if mg is None:
                assert new_chat is not None
                mg = MessagingGroup(
                    id=new_id("mg"),
                    channel_type=channel_type,
                    platform_id=platform_id,
                    name=None,
                    is_group=new_chat.is_group,
                    unknown_sender_policy=new_chat.unknown_sender_policy,
                )
                s.add(mg)
                return RouteFacts(mg, membership)
            wirings = tuple(
                s.scalars(
                    select(Wiring)
                    .where(Wiring.messaging_group_id == mg.id)
                    .order_by(Wiring.priority.desc(), Wiring.created_at)
                )
            )
            sessions: dict[SessionKey, SessionRow | None] = {}
            if session_key is not None:
                for wiring in wirings:
                    key = session_key(mg, wiring)
                    if key not in sessions:
                        sessions[key] = self._find_session(s, key)
            folders: dict[str, str] = {}
            if wirings:
                agent_ids = {w.agent_group_id for w in wirings}
                folders = {
                    ag: folder
                    for ag, folder in s.execute(
                        select(AgentGroup.id, AgentGroup.folder).where(AgentGroup.id.in_(agent_ids))
                    ).all()
                }
            return RouteFacts(mg, membership, wirings, sessions, folders)

    def membership(self, user_id: str | None) -> Membership | None:
        if user_id is None:
            return None
        with self.db.session() as s:
            if s.get(User, user_id) is None:
                return None
            return self._membership(s, user_id)

    @staticmethod
    def _membership(s: Session, user_id: str) -> Membership:
        roles = s.execute(
            select(UserRole.role, UserRole.agent_group_id).where(UserRole.user_id == user_id)
        ).all()
        member_of = s.scalars(
            select(AgentGroupMember.agent_group_id).where(AgentGroupMember.user_id == user_id)
        ).all()
        return Membership(
            user_id=user_id,
            roles=tuple((r, ag) for r, ag in roles),
            member_of=frozenset(member_of),
        )

    def grant_role(
        self, user_id: str, role: str, *, agent_group_id: str | None = None, granted_by: str | None
    ) -> None:
        if role == "owner" and agent_group_id is not None:
            raise ValidationError("the owner role is global; it takes no agent group", field="role")
        with self.db.session() as s:
            exists = s.scalar(
                select(UserRole).where(
                    UserRole.user_id == user_id,
                    UserRole.role == role,
                    func.coalesce(UserRole.agent_group_id, "") == (agent_group_id or ""),
                )
            )
            if exists is None:
                s.add(
                    UserRole(
                        user_id=user_id,
                        role=role,
                        agent_group_id=agent_group_id,
                        granted_by=granted_by,
                    )
                )

    def add_member(self, user_id: str, agent_group_id: str, *, added_by: str | None) -> None:
        with self.db.session() as s:
            if s.get(AgentGroupMember, (user_id, agent_group_id)) is None:
                s.add(
                    AgentGroupMember(
                        user_id=user_id, agent_group_id=agent_group_id, added_by=added_by
                    )
                )

    def has_owner(self) -> bool:
        with self.db.session() as s:
            return (
                s.scalar(select(UserRole.id).where(UserRole.role == "owner").limit(1)) is not None
            )

    # -- sessions -------------------------------------------------------------------------------
    def find_session(
        self,
        *,
        agent_group_id: str,
        messaging_group_id: str | None,
        thread_id: str | None,
        mode: str,
    ) -> SessionRow | None:
        key = SessionKey(agent_group_id, messaging_group_id, thread_id, mode)
        with self.db.session() as s:
            return self._find_session(s, key)

    @staticmethod
    def _find_session(s: Session, key: SessionKey) -> SessionRow | None:
        query = select(SessionRow).where(
            SessionRow.agent_group_id == key.agent_group_id, SessionRow.status == "active"
        )
        if key.mode != "agent-shared":
            query = query.where(SessionRow.messaging_group_id == key.messaging_group_id)
            if key.mode == "per-thread":
                query = query.where(SessionRow.thread_id == key.thread_id)
            else:
                query = query.where(SessionRow.thread_id.is_(None))
        return s.scalar(query.order_by(SessionRow.last_active.desc()).limit(1))

    def create_session(
        self,
        *,
        agent_group_id: str,
        messaging_group_id: str | None,
        thread_id: str | None,
        mode: str,
        session_id: str | None = None,
    ) -> SessionRow:
        with self.db.session() as s:
            row = SessionRow(
                id=session_id or new_id("sess"),
                agent_group_id=agent_group_id,
                messaging_group_id=messaging_group_id,
                thread_id=thread_id if mode == "per-thread" else None,
                session_mode=mode,
            )
            s.add(row)
        return row

    def session(self, session_id: str) -> SessionRow:
        with self.db.session() as s:
            row = s.get(SessionRow, session_id)
        if row is None:
            raise NotFoundError("session", session_id)
        return row

    def sessions(self, *, active_only: bool = True) -> list[SessionRow]:
        with self.db.session() as s:
            query = select(SessionRow).order_by(SessionRow.created_at)
            if active_only:
                query = query.where(SessionRow.status == "active")
            return list(s.scalars(query))

    def touch_session(self, session_id: str, *, at: datetime | None = None) -> None:
        self.touch_sessions([session_id], at=at)

    def touch_sessions(self, session_ids: Sequence[str], *, at: datetime | None = None) -> None:
        """Mark the sessions active now (one transaction for all of them)."""
        if not session_ids:
            return
        with self.db.session() as s:  # one UPDATE, no ORM load (this runs for every message)
            s.execute(
                update(SessionRow)
                .where(SessionRow.id.in_(list(session_ids)))
                .values(last_active=at or utc_now())
                .execution_options(synchronize_session=False)
            )

    def set_runner_status(
        self,
        session_id: str,
        status: str,
        *,
        exit_code: int | None = None,
        exit_log: str | None = None,
    ) -> None:
        with self.db.session() as s:
            row = s.get(SessionRow, session_id)
            if row is None:
                return
            row.runner_status = status
            if status == "stopped":
                row.last_exit_code = exit_code
                row.last_exit_log = exit_log

    def reset_runner_statuses(self) -> int:
        """Publish every session's runner as stopped (at start-up, before any runner starts)."""
        with self.db.session() as s:
            rows = list(s.scalars(select(SessionRow).where(SessionRow.runner_status == "running")))
            for row in rows:
                row.runner_status = "stopped"
            return len(rows)

    # -- drop audit --------------------------------------------------------------------------------
    def record_drop(
        self,
        *,
        channel_type: str,
        platform_id: str,
        reason: str,
        user_id: str | None = None,
        sender_name: str | None = None,
        messaging_group_id: str | None = None,
        agent_group_id: str | None = None,
        text: str | None = None,
    ) -> None:
        self.record_drops(
            [
                DropRecord(
                    channel_type=channel_type,
                    platform_id=platform_id,
                    reason=reason,
                    user_id=user_id,
                    sender_name=sender_name,
                    messaging_group_id=messaging_group_id,
                    agent_group_id=agent_group_id,
                    text=text,
                )
            ]
        )

    def record_drops(self, drops: Sequence[DropRecord]) -> None:
        """Count each drop in the audit (one transaction for all of them)."""
        if not drops:
            return
        with self.db.session() as s:
            for drop in drops:
                self._record_drop(s, drop)

    @staticmethod
    def _record_drop(s: Session, drop: DropRecord) -> None:
        key = drop.user_id or ""
        preview = (drop.text or "")[:280] or None
        row = s.scalar(
            select(DroppedMessage).where(
                DroppedMessage.channel_type == drop.channel_type,
                DroppedMessage.platform_id == drop.platform_id,
                DroppedMessage.sender_key == key,
                DroppedMessage.reason == drop.reason,
            )
        )
        if row is None:
            s.add(
                DroppedMessage(
                    channel_type=drop.channel_type,
                    platform_id=drop.platform_id,
                    sender_key=key,
                    user_id=drop.user_id,
                    sender_name=drop.sender_name,
                    reason=drop.reason,
                    messaging_group_id=drop.messaging_group_id,
                    agent_group_id=drop.agent_group_id,
                    last_text=preview,
                )
            )
            s.flush()  # a second drop of the same key in this transaction finds this row
        else:
            row.message_count += 1
            row.last_seen = utc_now()
            row.last_text = preview
            row.agent_group_id = drop.agent_group_id or row.agent_group_id

    def dropped(self) -> list[DroppedMessage]:
        with self.db.session() as s:
            return list(s.scalars(select(DroppedMessage).order_by(DroppedMessage.last_seen.desc())))
