"""Agent-to-agent delivery (upstream §6.3, and safer): the return path, files, hop and volume limits.

- **Return path.** A reply from agent B to agent A goes to the session of A that asked: the
  ``source_session_id`` of the row B answers (``in_reply_to``, looked up in B's own
  ``inbound.db``, which only the host writes). When that session is gone (closed, or not
  A's), upstream's peer affinity: the latest row from A in B's session that names a live
  session of A; then A's newest active session, or a new agent-shared one.
- **Files** named by the row are read from the sender's outbox through the confined opener
  and created exclusively in the receiver's ``inbox/<message>/`` before the row is written;
  the sender's outbox is removed only after that (by the delivery loop, on success).
- **Limits.** Each agent-to-agent row carries its hop count and the address of the chat
  message that started the exchange. A row past ``a2a_max_hops`` for its originating message,
  or past ``a2a_pair_max_messages`` between the same two agents within ``a2a_pair_window_s``,
  is refused: both agents get a context note (no wake, so no paid turn) saying why, and the
  originating chat is told once. The hop count comes from host-written rows; an agent that
  points ``in_reply_to`` elsewhere to reset it still meets the per-pair cap.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from nanoclaw.channels.base import OutboundFile
from nanoclaw.contract.confined import create_file
from nanoclaw.contract.layout import SessionLayout
from nanoclaw.contract.sessiondb import parse_content
from nanoclaw.db.models import SessionRow
from nanoclaw.db.repository import Repository
from nanoclaw.delivery.notices import Notifier
from nanoclaw.errors import DeliveryError, NotFoundError, UnauthorizedDestinationError
from nanoclaw.executors import Executors
from nanoclaw.ids import new_id
from nanoclaw.sessions.outbound_reader import OutboundRow
from nanoclaw.sessions.paths import safe_name
from nanoclaw.sessions.schema import messages_in
from nanoclaw.sessions.service import SessionService
from nanoclaw.sessions.store import InboundMessage
from nanoclaw.settings import Settings

log = logging.getLogger("nanoclaw.delivery.agents")

A2A_PREFIX = "a2a-"
LIMIT_NOTICE_PREFIX = "notice-a2a-limit-"


class AgentLimitError(DeliveryError):
    """An agent-to-agent message past the hop limit or the per-pair cap (never retried)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


@dataclass(frozen=True)
class Origin:
    """The chat message that started an exchange between agents."""

    channel_type: str
    platform_id: str
    thread_id: str | None
    message_id: str

    def to_json(self) -> dict[str, Any]:
        return {
            "channel_type": self.channel_type,
            "platform_id": self.platform_id,
            "thread_id": self.thread_id,
            "message_id": self.message_id,
        }

    @classmethod
    def from_json(cls, raw: Any) -> Origin | None:
        if not isinstance(raw, dict):
            return None
        try:
            return cls(
                str(raw["channel_type"]),
                str(raw["platform_id"]),
                raw.get("thread_id"),
                str(raw["message_id"]),
            )
        except KeyError:
            return None


@dataclass(frozen=True)
class Lineage:
    hop: int
    origin: Origin | None
    answered: dict[str, Any] | None  # the row being answered, as the host wrote it


class PairVolume:
    """A sliding window of delivered agent-to-agent messages per unordered pair of agents."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._sent: dict[frozenset[str], deque[float]] = {}

    def count(self, a: str, b: str, window_s: float) -> int:
        sent = self._sent.get(frozenset((a, b)))
        if sent is None:
            return 0
        horizon = self.clock() - window_s
        while sent and sent[0] < horizon:
            sent.popleft()
        return len(sent)

    def add(self, a: str, b: str) -> None:
        self._sent.setdefault(frozenset((a, b)), deque()).append(self.clock())


class AgentRouter:
    def __init__(
        self,
        *,
        executors: Executors,
        settings: Settings,
        repo: Repository,
        sessions: SessionService,
        notices: Notifier | None,
        wake: Callable[[str], object],
        read_files: Callable[[SessionLayout, str, list[str]], tuple[OutboundFile, ...]],
        volume: PairVolume | None = None,
    ) -> None:
        self.executors = executors
        self.settings = settings
        self.repo = repo
        self.sessions = sessions
        self.notices = notices
        self.wake = wake
        self.read_files = read_files
        self.volume = volume or PairVolume()
        self._noticed: set[str] = set()  # origins (or pairs) whose chat was told of a limit

    async def deliver(self, session: SessionRow, layout: SessionLayout, row: OutboundRow) -> str:
        target = row.platform_id
        if not target:
            raise UnauthorizedDestinationError(f"message {row.id} names no agent")
        if target != session.agent_group_id:
            allowed = {
                d.target_id
                for d in await self.executors.central.run(
                    self.repo.destinations, session.agent_group_id
                )
                if d.target_type == "agent"
            }
            if target not in allowed:
                raise UnauthorizedDestinationError(f"agent may not message agent {target}")
        lineage = await self.executors.central.run(self._lineage, session, layout, row)
        target_session, target_layout = await self.executors.central.run(
            self._target_session, layout, row, target
        )
        await self._check_limits(session, layout, target_session, target_layout, row, lineage)
        message_id = f"{A2A_PREFIX}{row.id}"
        attachments = await self.executors.sessions.run(
            target_session.id, self._copy_files, layout, target_layout, row, message_id
        )
        content: dict[str, Any] = {
            "text": row.content.get("text", ""),
            "sender": session.agent_group_id,
            "a2a": {
                "hop": lineage.hop,
                "origin": lineage.origin.to_json() if lineage.origin else None,
            },
        }
        if attachments:
            content["attachments"] = attachments
        await self.executors.sessions.run(
            target_session.id,
            self.sessions.store.insert_messages,
            target_layout,
            [
                InboundMessage(
                    id=message_id,
                    kind="chat",
                    content=content,
                    channel_type="agent",
                    platform_id=session.agent_group_id,
                    source_session_id=session.id,
                )
            ],
        )
        self.volume.add(session.agent_group_id, target)
        self.wake(target_session.id)
        return message_id

    # -- where it goes -----------------------------------------------------------------------
    def _rows(self, layout: SessionLayout, *where: Any) -> list[Any]:
        engine = self.sessions.store.engines.get(layout.inbound_db, readonly=True)
        with engine.connect() as conn:
            return list(conn.execute(select(messages_in).where(*where)).all())

    def _live_session_of(self, session_id: str | None, agent_group_id: str) -> SessionRow | None:
        if not session_id:
            return None
        try:
            found = self.repo.session(session_id)
        except NotFoundError:
            return None
        if found.status != "active" or found.agent_group_id != agent_group_id:
            return None
        return found

    def _target_session(
        self, layout: SessionLayout, row: OutboundRow, target: str
    ) -> tuple[SessionRow, SessionLayout]:
        """The session of ``target`` this row answers, else peer affinity, else its newest."""
        candidates: list[str | None] = []
        if row.in_reply_to:
            for answered in self._rows(layout, messages_in.c.id == row.in_reply_to):
                if answered.channel_type == "agent" and answered.platform_id == target:
                    candidates.append(answered.source_session_id)
        peers = self._rows(
            layout,
            messages_in.c.channel_type == "agent",
            messages_in.c.platform_id == target,
            messages_in.c.source_session_id.is_not(None),
        )
        candidates += [p.source_session_id for p in sorted(peers, key=lambda p: -p.seq)]
        for candidate in candidates:
            found = self._live_session_of(candidate, target)
            if found is not None:
                return found, self.sessions.layout(found)
        return self.sessions.resolve(
            agent_group_id=target, messaging_group_id=None, thread_id=None, mode="agent-shared"
        )

    def _lineage(self, session: SessionRow, layout: SessionLayout, row: OutboundRow) -> Lineage:
        """Hop count and originating chat message, from the host-written row being answered."""
        answered = None
        if row.in_reply_to:
            found = self._rows(layout, messages_in.c.id == row.in_reply_to)
            answered = dict(found[0]._mapping) if found else None
        if answered is not None:
            content = parse_content(answered["content"])
            if answered["channel_type"] == "agent" and isinstance(content.get("a2a"), dict):
                a2a = content["a2a"]
                hop = int(a2a.get("hop") or 0) + 1
                return Lineage(hop, Origin.from_json(a2a.get("origin")), answered)
            if answered["channel_type"] not in (None, "agent") and answered["platform_id"]:
                origin = Origin(
                    answered["channel_type"],
                    answered["platform_id"],
                    answered["thread_id"],
                    answered["id"],
                )
                return Lineage(1, origin, answered)
        return Lineage(1, self._session_chat(session, row), answered)

    def _session_chat(self, session: SessionRow, row: OutboundRow) -> Origin | None:
        if not session.messaging_group_id:
            return None
        mg = self.repo.messaging_group_by_id(session.messaging_group_id)
        if mg is None:
            return None
        return Origin(mg.channel_type, mg.platform_id, session.thread_id, row.id)

    # -- limits ------------------------------------------------------------------------------
    async def _check_limits(
        self,
        session: SessionRow,
        layout: SessionLayout,
        target_session: SessionRow,
        target_layout: SessionLayout,
        row: OutboundRow,
        lineage: Lineage,
    ) -> None:
        settings = self.settings
        target = target_session.agent_group_id
        reason: str | None = None
        notice_key = ""
        if lineage.hop > settings.a2a_max_hops:
            reason = (
                f"the conversation between agents reached its limit of {settings.a2a_max_hops}"
                " messages for one request"
            )
            notice_key = lineage.origin.message_id if lineage.origin else row.id
        else:
            sent = self.volume.count(session.agent_group_id, target, settings.a2a_pair_window_s)
            if sent >= settings.a2a_pair_max_messages:
                reason = (
                    f"these two agents exchanged {sent} messages in the last"
                    f" {settings.a2a_pair_window_s:g} s (the limit is"
                    f" {settings.a2a_pair_max_messages})"
                )
                window = int(self.volume.clock() // settings.a2a_pair_window_s)
                pair_key = ":".join(sorted((session.agent_group_id, target)))
                notice_key = f"pair:{pair_key}:{window}"  # told once per window
        if reason is None:
            return
        log.warning(
            "agent-to-agent message %s from %s to %s refused: %s",
            row.id,
            session.agent_group_id,
            target,
            reason,
        )
        preview = str(row.content.get("text", ""))[:160]
        sender_name, target_name = await self.executors.central.run(
            lambda: (self._name(session.agent_group_id), self._name(target))
        )
        await self._note(
            session,
            layout,
            f"Your message to {target_name} was not delivered: {reason}. Do not send more"
            f" messages to {target_name} for this request; answer the user instead. It read:"
            f" {preview}",
        )
        await self._note(
            target_session,
            target_layout,
            f"A message from {sender_name} was not delivered to you: {reason}.",
        )
        if (
            self.notices is not None
            and lineage.origin is not None
            and notice_key not in self._noticed
        ):
            self._noticed.add(notice_key)
            await self.notices.notify(
                lineage.origin.channel_type,
                lineage.origin.platform_id,
                lineage.origin.thread_id,
                f"{sender_name} and {target_name} were stopped talking to each other: {reason}.",
            )
        raise AgentLimitError(reason)

    async def _note(self, session: SessionRow, layout: SessionLayout, text: str) -> None:
        """A context row for the agent: read at its next turn, never a wake (no paid turn)."""
        await self.executors.sessions.run(
            session.id,
            self.sessions.store.insert_messages,
            layout,
            [
                InboundMessage(
                    id=new_id(LIMIT_NOTICE_PREFIX.rstrip("-")),
                    kind="chat",
                    content={"text": text, "sender": "system"},
                    channel_type="agent",
                    platform_id=session.agent_group_id,
                    trigger=0,
                )
            ],
        )

    def _name(self, agent_group_id: str) -> str:
        """Blocking (central DB): the agent's name, or its id when it is gone."""
        try:
            return self.repo.agent_group(agent_group_id).name
        except NotFoundError:
            return agent_group_id

    # -- files ---------------------------------------------------------------------------------
    def _copy_files(
        self,
        layout: SessionLayout,
        target_layout: SessionLayout,
        row: OutboundRow,
        message_id: str,
    ) -> list[dict[str, str]]:
        names = row.content.get("files") or []
        if not names:
            return []
        if not isinstance(names, list):
            raise DeliveryError(f"message {row.id}: 'files' is not a list", retryable=False)
        files = self.read_files(layout, row.id, [str(n) for n in names])
        folder = safe_name(message_id)
        saved: list[dict[str, str]] = []
        for item in files:
            name = safe_name(item.filename)
            if not create_file(
                target_layout.root, "inbox", folder, name, data=item.data, make_dirs=True
            ):
                log.info("file %s/%s already copied (a retried delivery)", folder, name)
            saved.append({"name": name, "path": f"inbox/{folder}/{name}"})
        return saved
