"""Queries and writes on the entity model, each in its own short transaction."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nanoclaw.contract.timeutil import to_iso, utc_now
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
    PendingApproval,
    SessionRow,
    User,
    UserRole,
    Wiring,
)
from nanoclaw.db.plain_rows import PlainTable, placeholders
from nanoclaw.errors import NotFoundError, ValidationError
from nanoclaw.ids import new_id

# The per-message reads and writes go through plain sqlite3 (``CentralDB.plain``): the ORM's
# unit of work costs several times the statements it runs there.
_MESSAGING_GROUPS = PlainTable(MessagingGroup)
_WIRINGS = PlainTable(Wiring)
_SESSIONS = PlainTable(SessionRow)
_USERS = PlainTable(User)
_APPROVALS = PlainTable(PendingApproval)

# How many senders and chats ``route_facts`` remembers having seen (its write hint), at most.
ROUTE_HINTS_MAX = 10_000


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
    # The chat's pending approval cards, newest first; read only for a sender with a user id
    # (one who may answer a card).
    open_cards: tuple[PendingApproval, ...] = ()


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
        self._route_hints = _RouteHints()

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
        with self.db.plain(write=False) as conn:
            return _messaging_group(conn, channel_type, platform_id)

    def messaging_group_by_id(self, mg_id: str) -> MessagingGroup | None:
        with self.db.plain(write=False) as conn:
            return _MESSAGING_GROUPS.one(conn, "WHERE id = ?", (mg_id,))

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
        with self.db.plain(write=False) as conn:
            return _wirings_for(conn, messaging_group_id)

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
        with self.db.plain() as conn:
            membership = _upsert_user(conn, user_id, kind, display_name, may_write=True)
        assert membership is not None  # it may write
        return membership

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
        (highest priority first), each wiring's active session under ``session_key``, the
        wired agents' folders and the chat's open approval cards.

        An unknown chat writes nothing (no user is created for it) unless ``new_chat`` says
        how to register it; a chat registered here has no wirings yet.

        A route from a sender and chat seen before writes nothing and reads in a reading
        transaction (``BEGIN``: no write lock). A first sender, a rename or a chat to register
        takes a writing one (``BEGIN IMMEDIATE``). If the reading one finds that something must
        be written after all (the sender was removed meanwhile), it is all done again in a
        writing one, re-read under the write lock: SQLite cannot upgrade a reading transaction
        whose snapshot another writer has moved past.
        """
        route = _RouteQuery(
            channel_type, platform_id, user_id, user_kind, display_name, new_chat, session_key
        )
        may_write = self._route_hints.may_write(route)
        with self.db.plain(write=may_write) as conn:
            facts = route.facts(conn, may_write=may_write)
        if facts is None:
            with self.db.plain() as conn:
                facts = route.facts(conn, may_write=True)
        assert facts is not None  # it may write
        self._route_hints.saw(route, facts)
        return facts

    def membership(self, user_id: str | None) -> Membership | None:
        if user_id is None:
            return None
        with self.db.plain(write=False) as conn:
            if conn.execute("SELECT 1 FROM users WHERE id = ?", (user_id,)).fetchone() is None:
                return None
            return _membership(conn, user_id)

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
        with self.db.plain(write=False) as conn:
            return _find_session(conn, key)

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
        with self.db.plain(write=False) as conn:
            row = _SESSIONS.one(conn, "WHERE id = ?", (session_id,))
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
        with self.db.plain() as conn:  # this runs for every message
            conn.execute(
                f"UPDATE sessions SET last_active = ? WHERE id IN ({placeholders(len(session_ids))})",
                (to_iso(at or utc_now()), *session_ids),
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


class _RouteHints:
    """The senders and chats routes have seen: whether the next route will likely write.

    Only a guess at the transaction to begin (a wrong one costs a second transaction or a
    write lock taken for nothing); every fact is read from the database. Used on the one
    central thread; forgotten wholesale past ``ROUTE_HINTS_MAX`` entries.
    """

    def __init__(self) -> None:
        self._senders: dict[str, str | None] = {}  # user id → its stored name (None: unknown)
        self._chats: set[tuple[str, str]] = set()  # (channel type, platform id) registered

    def may_write(self, route: _RouteQuery) -> bool:
        if route.user_id is not None:
            if route.user_id not in self._senders:
                return True
            if route.display_name and self._senders[route.user_id] != route.display_name:
                return True
        return (
            route.new_chat is not None
            and (route.channel_type, route.platform_id) not in self._chats
        )

    def saw(self, route: _RouteQuery, facts: RouteFacts) -> None:
        if len(self._senders) + len(self._chats) >= ROUTE_HINTS_MAX:
            self._senders.clear()
            self._chats.clear()
        if facts.messaging_group is not None:
            self._chats.add((route.channel_type, route.platform_id))
        if route.user_id is not None and facts.membership is not None:  # its row exists now
            name = route.display_name or self._senders.get(route.user_id)
            self._senders[route.user_id] = name


@dataclass(frozen=True)
class _RouteQuery:
    """The arguments of one ``Repository.route_facts``, read (and written) on a plain connection."""

    channel_type: str
    platform_id: str
    user_id: str | None
    user_kind: str
    display_name: str | None
    new_chat: NewChat | None
    session_key: Callable[[MessagingGroup, Wiring], SessionKey] | None

    def facts(self, conn: sqlite3.Connection, *, may_write: bool) -> RouteFacts | None:
        """The facts, or None if ``may_write`` is false and something must be written."""
        mg = _messaging_group(conn, self.channel_type, self.platform_id)
        if mg is None and self.new_chat is None:
            return RouteFacts(None, None)
        membership = None
        if self.user_id is not None:
            membership = _upsert_user(
                conn, self.user_id, self.user_kind, self.display_name, may_write=may_write
            )
            if membership is None:
                return None
        if mg is None:
            assert self.new_chat is not None
            if not may_write:
                return None
            mg = _MESSAGING_GROUPS.insert(
                conn,
                {
                    "id": new_id("mg"),
                    "channel_type": self.channel_type,
                    "platform_id": self.platform_id,
                    "name": None,
                    "is_group": self.new_chat.is_group,
                    "unknown_sender_policy": self.new_chat.unknown_sender_policy,
                    "denied_at": None,
                    "created_at": utc_now(),
                },
            )
            # A chat registered again (deleted meanwhile) can still hold a pending card.
            return RouteFacts(mg, membership, open_cards=_open_cards(conn, mg, membership))
        cards = _open_cards(conn, mg, membership)
        wirings = tuple(_wirings_for(conn, mg.id))
        sessions: dict[SessionKey, SessionRow | None] = {}
        if self.session_key is not None:
            for wiring in wirings:
                key = self.session_key(mg, wiring)
                if key not in sessions:
                    sessions[key] = _find_session(conn, key)
        folders: dict[str, str] = {}
        if wirings:
            agent_ids = sorted({w.agent_group_id for w in wirings})
            folders = dict(
                conn.execute(
                    f"SELECT id, folder FROM agent_groups WHERE id IN ({placeholders(len(agent_ids))})",
                    agent_ids,
                )
            )
        return RouteFacts(mg, membership, wirings, sessions, folders, cards)


def _messaging_group(
    conn: sqlite3.Connection, channel_type: str, platform_id: str
) -> MessagingGroup | None:
    return _MESSAGING_GROUPS.one(
        conn, "WHERE channel_type = ? AND platform_id = ?", (channel_type, platform_id)
    )


def _open_cards(
    conn: sqlite3.Connection, mg: MessagingGroup, membership: Membership | None
) -> tuple[PendingApproval, ...]:
    """Pending approval cards delivered to this chat, newest first; none for a sender without
    a user id (no one to answer them)."""
    if membership is None:
        return ()
    return tuple(
        _APPROVALS.all(
            conn,
            "WHERE card_channel_type = ? AND card_platform_id = ? AND status = ?"
            " ORDER BY created_at DESC, id DESC",
            (mg.channel_type, mg.platform_id, "pending"),
        )
    )


def _wirings_for(conn: sqlite3.Connection, messaging_group_id: str) -> list[Wiring]:
    return _WIRINGS.all(
        conn,
        "WHERE messaging_group_id = ? ORDER BY priority DESC, created_at",
        (messaging_group_id,),
    )


def _upsert_user(
    conn: sqlite3.Connection,
    user_id: str,
    kind: str,
    display_name: str | None,
    *,
    may_write: bool,
) -> Membership | None:
    """Create or rename the user and return its membership; None if that needs a write and
    ``may_write`` is false."""
    row = conn.execute("SELECT display_name FROM users WHERE id = ?", (user_id,)).fetchone()
    if row is None:
        if not may_write:
            return None
        _USERS.insert(
            conn,
            {"id": user_id, "kind": kind, "display_name": display_name, "created_at": utc_now()},
        )
    elif display_name and row[0] != display_name:
        if not may_write:
            return None
        conn.execute("UPDATE users SET display_name = ? WHERE id = ?", (display_name, user_id))
    return _membership(conn, user_id)


def _membership(conn: sqlite3.Connection, user_id: str) -> Membership:
    roles = conn.execute(
        "SELECT role, agent_group_id FROM user_roles WHERE user_id = ?", (user_id,)
    ).fetchall()
    member_of = conn.execute(
        "SELECT agent_group_id FROM agent_group_members WHERE user_id = ?", (user_id,)
    ).fetchall()
    return Membership(
        user_id=user_id,
        roles=tuple((role, ag) for role, ag in roles),
        member_of=frozenset(ag for (ag,) in member_of),
    )


def _find_session(conn: sqlite3.Connection, key: SessionKey) -> SessionRow | None:
    """The most recently active session ``key`` matches (the ORM query's plain twin)."""
    where = "WHERE agent_group_id = ? AND status = 'active'"
    params: list[str] = [key.agent_group_id]
    if key.mode != "agent-shared":
        thread_id = key.thread_id if key.mode == "per-thread" else None
        for column, value in (
            ("messaging_group_id", key.messaging_group_id),
            ("thread_id", thread_id),
        ):
            if value is None:  # as the ORM's ``column == None``
                where += f" AND {column} IS NULL"
            else:
                where += f" AND {column} = ?"
                params.append(value)
    return _SESSIONS.one(conn, f"{where} ORDER BY last_active DESC LIMIT 1", params)
