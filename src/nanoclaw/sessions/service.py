"""Resolve sessions for (agent, chat, thread), create their folders, and project routing into them."""

from __future__ import annotations

from nanoclaw.contract.layout import SessionLayout
from nanoclaw.db.models import SessionRow
from nanoclaw.db.repository import Repository
from nanoclaw.sessions.store import DestinationRow, RoutingRow, SessionStore


class SessionService:
    def __init__(self, *, repo: Repository, store: SessionStore) -> None:
        self.repo = repo
        self.store = store
        self._folders: dict[str, str] = {}

    def folder_of(self, agent_group_id: str) -> str:
        folder = self._folders.get(agent_group_id)
        if folder is None:
            folder = self.repo.agent_group(agent_group_id).folder
            self._folders[agent_group_id] = folder
        return folder

    def layout(self, session: SessionRow) -> SessionLayout:
        return self.store.layout(self.folder_of(session.agent_group_id), session.id)

    def resolve(
        self,
        *,
        agent_group_id: str,
        messaging_group_id: str | None,
        thread_id: str | None,
        mode: str,
    ) -> tuple[SessionRow, SessionLayout]:
        """Find the active session for this mode, or create one with its folder and DBs."""
        session = self.repo.find_session(
            agent_group_id=agent_group_id,
            messaging_group_id=messaging_group_id,
            thread_id=thread_id,
            mode=mode,
        )
        if session is not None:
            return session, self.layout(session)
        session = self.repo.create_session(
            agent_group_id=agent_group_id,
            messaging_group_id=messaging_group_id,
            thread_id=thread_id,
            mode=mode,
        )
        layout = self.store.ensure(self.folder_of(agent_group_id), session.id)
        self.project(session, layout)
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
        rows: list[DestinationRow] = []
        for dest in self.repo.destinations(session.agent_group_id):
            if dest.target_type == "channel":
                mg = self.repo.messaging_group_by_id(dest.target_id)
                if mg is None:
                    continue
                rows.append(
                    DestinationRow(
                        name=dest.local_name,
                        display_name=mg.name,
                        type="channel",
                        channel_type=mg.channel_type,
                        platform_id=mg.platform_id,
                        agent_group_id=None,
                    )
                )
            else:
                rows.append(
                    DestinationRow(
                        name=dest.local_name,
                        display_name=None,
                        type="agent",
                        channel_type=None,
                        platform_id=None,
                        agent_group_id=dest.target_id,
                    )
                )
        routing = None
        if session.messaging_group_id:
            mg = self.repo.messaging_group_by_id(session.messaging_group_id)
            if mg is not None:
                routing = RoutingRow(mg.channel_type, mg.platform_id, session.thread_id)
        self.store.project(layout, dests=rows, routing=routing)
