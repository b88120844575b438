"""The ``TurnContext`` a provider's tools use: sends, system actions, state, heartbeat."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent_runner.db import OutboundMessage, SessionDB
from agent_runner.heartbeat import Heartbeat
from agent_runner.rows import Destination, InboundRow, Routing


class UnknownDestinationError(Exception):
    def __init__(self, name: str, known: Sequence[str]) -> None:
        listed = ", ".join(known) or "none"
        super().__init__(f"unknown destination {name!r}; known destinations: {listed}")
        self.name = name


class RunnerContext:
    """One turn's context: knows the batch's origin and the session's destinations."""

    def __init__(
        self,
        *,
        db: SessionDB,
        heartbeat: Heartbeat,
        batch: Sequence[InboundRow],
        destinations: Sequence[Destination],
        session_routing: Routing | None,
        group_dir: Path,
        session_dir: Path,
    ) -> None:
        self.db = db
        self.heartbeat = heartbeat
        self.batch = tuple(batch)
        self.destinations = {d.name: d for d in destinations}
        self.group_dir = group_dir
        self.session_dir = session_dir
        self.origin = _origin(batch, session_routing)
        self.in_reply_to = next((r.id for r in batch if r.trigger), batch[0].id if batch else None)

    def touch(self) -> None:
        self.heartbeat.touch()

    def address(self, to: str | None, content: dict[str, Any]) -> OutboundMessage:
        """Resolve a destination name (None = origin) into an outbound chat row."""
        if to is None:
            if self.origin is None:
                raise UnknownDestinationError("(origin)", list(self.destinations))
            return OutboundMessage(
                kind="chat",
                content=content,
                channel_type=self.origin.channel_type,
                platform_id=self.origin.platform_id,
                thread_id=self.origin.thread_id,
                in_reply_to=self.in_reply_to,
            )
        dest = self.destinations.get(to)
        if dest is None:
            # The host may have added one mid-turn (create_agent re-projects destinations).
            self.destinations = {d.name: d for d in self.db.destinations()}
            dest = self.destinations.get(to)
        if dest is None:
            raise UnknownDestinationError(to, list(self.destinations))
        if dest.type == "agent":
            return OutboundMessage(
                kind="chat",
                content=content,
                channel_type="agent",
                platform_id=dest.agent_group_id,
                in_reply_to=self.in_reply_to,
            )
        assert dest.channel_type is not None and dest.platform_id is not None
        latest = self.db.latest_from(dest.channel_type, dest.platform_id)
        return OutboundMessage(
            kind="chat",
            content=content,
            channel_type=dest.channel_type,
            platform_id=dest.platform_id,
            thread_id=latest.thread_id if latest else None,
            in_reply_to=latest.id if latest else self.in_reply_to,
        )

    def send(self, *, to: str | None, text: str, files: Sequence[str] = ()) -> int:
        content: dict[str, Any] = {"text": text}
        if files:
            content["files"] = list(files)
        seq = self.db.send(self.address(to, content))
        self.touch()
        return seq

    def request_action(self, action: str, payload: dict[str, Any]) -> int:
        routing = self.origin
        message = OutboundMessage(
            kind="system",
            content={"action": action, **payload},
            channel_type=routing.channel_type if routing else None,
            platform_id=routing.platform_id if routing else None,
            thread_id=routing.thread_id if routing else None,
            in_reply_to=self.in_reply_to,
        )
        seq = self.db.send(message)
        self.touch()
        return seq

    def get_state(self, key: str) -> str | None:
        return self.db.get_state(key)

    def set_state(self, key: str, value: str | None) -> None:
        self.db.set_state(key, value)

    def declare_tool(self, tool: str | None, *, timeout_ms: int | None = None) -> None:
        self.db.set_current_tool(tool, declared_timeout_ms=timeout_ms)
        self.touch()


def _origin(batch: Sequence[InboundRow], session_routing: Routing | None) -> Routing | None:
    """Replies go to the first triggering row that came from a chat, else the session's chat."""
    for row in sorted(batch, key=lambda r: (-r.trigger, r.seq)):
        if row.channel_type and row.channel_type != "agent" and row.platform_id:
            return Routing(row.channel_type, row.platform_id, row.thread_id)
    for row in batch:
        if (
            row.channel_type == "agent"
            and row.platform_id
            and row.content.get("sender") != "system"
        ):
            return Routing("agent", row.platform_id, None)
    if session_routing and session_routing.platform_id:
        return session_routing
    return None
