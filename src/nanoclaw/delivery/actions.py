"""System actions: ``kind=system`` rows a runner writes, carried out by the host.

Each handler gets the session and the row and returns a short result text; raising
``NanoclawError`` reports a failure. The result comes back to the agent as an inbound
``system`` row. Permission checks for actions belong to ``authorize`` (one place).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nanoclaw.db.models import SessionRow
from nanoclaw.sessions.outbound_reader import OutboundRow


@dataclass(frozen=True)
class ActionResult:
    status: str  # "ok" | "error" | "pending"
    text: str
    reply_to_agent: bool = True


def action_result_content(row: OutboundRow, status: str, text: str) -> dict[str, object]:
    """The inbound ``system`` row that answers an agent's action request."""
    return {
        "type": "action_result",
        "action": row.content.get("action"),
        "request_id": row.id,
        "status": status,
        "text": text,
    }


ActionHandler = Callable[[SessionRow, OutboundRow], Awaitable[ActionResult]]
# None = allowed; a string = refused with that text; an ActionResult = the outcome instead of
# running the handler now (e.g. "pending" while an approval card waits for an admin).
Authorizer = Callable[[SessionRow, OutboundRow], Awaitable[str | ActionResult | None]]


class SystemActions:
    def __init__(self) -> None:
        self._handlers: dict[str, ActionHandler] = {}
        self._authorize: Authorizer | None = None

    def register(self, action: str, handler: ActionHandler) -> None:
        self._handlers[action] = handler

    def set_authorizer(self, authorizer: Authorizer) -> None:
        """Install the single permission check run before every action (None = allowed)."""
        self._authorize = authorizer

    def names(self) -> list[str]:
        return sorted(self._handlers)

    async def run(self, session: SessionRow, row: OutboundRow) -> ActionResult:
        action = str(row.content.get("action") or "")
        handler = self._handlers.get(action)
        if handler is None:
            return ActionResult("error", f"unknown action {action!r}")
        if self._authorize is not None:
            refusal = await self._authorize(session, row)
            if isinstance(refusal, ActionResult):
                return refusal
            if refusal is not None:
                return ActionResult("error", refusal)
        return await handler(session, row)

    async def run_approved(self, session: SessionRow, row: OutboundRow) -> ActionResult:
        """Run an action an admin approved on an approval card (the authorizer already ran)."""
        action = str(row.content.get("action") or "")
        handler = self._handlers.get(action)
        if handler is None:
            return ActionResult("error", f"unknown action {action!r}")
        return await handler(session, row)
