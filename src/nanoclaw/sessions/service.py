"""Resolve sessions for (agent, chat, thread), create their folders, and project routing into them.

Find-or-create is atomic per (agent, chat, thread): resolvers of one key hold one lock (the host
is the central DB's only writer of sessions), and a session's folder and both DBs exist before
its row is committed, so no reader ever finds a session whose ``inbound.db`` is missing.
"""

from __future__ import annotations

import threading
import zlib

from nanoclaw.contract.layout import SessionLayout
from nanoclaw.db.models import SessionRow
from nanoclaw.db.repository import Repository
from nanoclaw.ids import new_id
from nanoclaw.sessions.store import DestinationRow, RoutingRow, SessionStore

RESOLVE_LOCK_STRIPES = 64


class SessionService:
    def __init__(self, *, repo: Repository, store: SessionStore) -> None:
        self.repo = repo
        self.store = store
        self._folders: dict[str, str] = {}
        # Striped locks: bounded memory, and distinct keys rarely share a stripe.
        self._resolve_locks = [threading.Lock() for _ in range(RESOLVE_LOCK_STRIPES)]

    def folder_of(self, agent_group_id: str) -> str:
        folder = self._folders.get(agent_group_id)
        if folder is None:
            folder = self.repo.agent_group(agent_group_id).folder
            self._folders[agent_group_id] = folder
        return folder

    def layout(self, session: SessionRow) -> SessionLayout:
        return self.store.layout(self.folder_of(session.agent_group_id), session.id)

    def row_and_layout(self, session_id: str) -> tuple[SessionRow, SessionLayout]:
        """Blocking (central DB): a session's row and its folder's layout, in one call."""
        session = self.repo.session(session_id)
        return session, self.layout(session)

    def resolve(
        self,
        *,
        agent_group_id: str,
        messaging_group_id: str | None,
        thread_id: str | None,
        mode: str,
    ) -> tuple[SessionRow, SessionLayout]:
        """Find the active session for this mode, or create one with its folder and DBs."""
        key = _session_key(agent_group_id, messaging_group_id, thread_id, mode)
        with self._resolve_locks[zlib.crc32(key.encode()) % RESOLVE_LOCK_STRIPES]:
            session = self.repo.find_session(
                agent_group_id=agent_group_id,
                messaging_group_id=messaging_group_id,
                thread_id=thread_id,
                mode=mode,
            )
            if session is not None:
                return session, self.layout(session)
            # Folder and DBs first, then the row: a session is never visible (to the sweep,
            # delivery, status) before its inbound.db exists. The projection (the agent's
            # destinations, the reply address) is written before every runner start
            # (``Supervisor._prepare``), its only reader; a session that never runs never pays
            # for its agent's destinations.
            draft = SessionRow(
                id=new_id("sess"),
                agent_group_id=agent_group_id,
                messaging_group_id=messaging_group_id,
                thread_id=thread_id if mode == "per-thread" else None,
                session_mode=mode,
            )
            layout = self.store.ensure(self.folder_of(agent_group_id), draft.id)
            # No runner can be alive for a session not yet created (invariant 1 allows this).
            self.store.prepare_outbound(layout)
            session = self.repo.create_session(
                agent_group_id=agent_group_id,
                messaging_group_id=messaging_group_id,
                thread_id=thread_id,
                mode=mode,
                session_id=draft.id,
            )
            return session, layout

    def project_agent(self, agent_group_id: str) -> None:
        """Re-project into every live session of an agent (after a wiring or destination change).

        A running runner re-reads its destinations when it meets an unknown name, so the change
        works without a restart.
        """
        for live in self.repo.sessions():
            if live.agent_group_id == agent_group_id:
                self.project(live)

    def project(self, session: SessionRow, layout: SessionLayout | None = None) -> None:
        """Write the agent's destinations and the session's reply address into ``inbound.db``."""
        layout = layout or self.layout(session)
        rows, routing = self.projection(session)
        self.store.project(layout, dests=rows, routing=routing)

    def projection(self, session: SessionRow) -> tuple[list[DestinationRow], RoutingRow | None]:
        """The agent's destinations and the session's reply address, from the central DB (one
        query for the destinations and the chats they name, however many the agent is wired to,
        and one for the reply address when it is not among them)."""
        rows: list[DestinationRow] = []
        chats: dict[str, tuple[str | None, str | None]] = {}
        for dest in self.repo.destination_targets(session.agent_group_id):
            if dest.target_type != "channel":
                rows.append(
                    DestinationRow(dest.local_name, None, "agent", None, None, dest.target_id)
                )
            elif dest.chat_id is not None:
                chats[dest.chat_id] = (dest.channel_type, dest.platform_id)
                rows.append(
                    DestinationRow(
                        dest.local_name,
                        dest.chat_name,
                        "channel",
                        dest.channel_type,
                        dest.platform_id,
                        None,
                    )
                )
        routing = None
        if session.messaging_group_id:
            address = chats.get(session.messaging_group_id)
            if address is None:
                mg = self.repo.messaging_group_by_id(session.messaging_group_id)
                address = None if mg is None else (mg.channel_type, mg.platform_id)
            if address is not None:
                routing = RoutingRow(address[0], address[1], session.thread_id)
        return rows, routing


def _session_key(
    agent_group_id: str, messaging_group_id: str | None, thread_id: str | None, mode: str
) -> str:
    """The identity ``find_session`` matches on for this mode."""
    if mode == "agent-shared":
        return f"{agent_group_id}\0*"
    thread = thread_id if mode == "per-thread" else None
    return f"{agent_group_id}\0{messaging_group_id}\0{thread}"
