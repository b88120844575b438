"""System actions: the ``kind=system`` rows a runner writes, parsed, authorized and carried out."""

# Each handler gets the session and the row (and, registered with its model from
# ``nanoclaw.contract.actions``, the payload parsed before anything else runs: a refused payload
# is answered with an error naming its fields, never authorized or carried out) and returns a
# short result text; raising ``NanoclawError`` reports a failure. The result comes back to the
# agent as an inbound ``system`` row. Permission checks for actions belong to ``authorize``.

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from nanoclaw.contract.actions import ActionStatus, Payload, parse_payload
from nanoclaw.db.models import SessionRow
from nanoclaw.errors import PayloadError
from nanoclaw.sessions.outbound_reader import OutboundRow

P = TypeVar("P", bound=Payload)


@dataclass(frozen=True)
class ActionResult:
    status: ActionStatus
    text: str
    reply_to_agent: bool = True


def action_result_content(row: OutboundRow, status: ActionStatus, text: str) -> dict[str, object]:
    """The inbound ``system`` row that answers an agent's action request."""
    return {
        "type": "action_result",
        "action": row.content.get("action"),
        "request_id": row.id,
        "status": status.value,
        "text": text,
    }


ActionHandler = Callable[[SessionRow, OutboundRow], Awaitable[ActionResult]]
PayloadHandler = Callable[[SessionRow, OutboundRow, P], Awaitable[ActionResult]]
# None = allowed; a string = refused with that text; an ActionResult = the outcome instead of
# running the handler now (e.g. "pending" while an approval card waits for an admin).
Authorizer = Callable[[SessionRow, OutboundRow], Awaitable[str | ActionResult | None]]


@dataclass(frozen=True)
class _Registered:
    call: Callable[[SessionRow, OutboundRow, Any], Awaitable[ActionResult]]
    payload: type[Payload] | None
    answer_refusal: bool = True


class SystemActions:
    def __init__(self) -> None:
        self._handlers: dict[str, _Registered] = {}
        self._authorize: Authorizer | None = None

    def register(self, action: str, handler: ActionHandler) -> None:
        """An action whose handler reads the row itself (no payload model)."""
        self._handlers[action] = _Registered(lambda s, r, _p: handler(s, r), None)

    def register_payload(
        self,
        action: str,
        payload: type[P],
        handler: PayloadHandler[P],
        *,
        answer_refusal: bool = True,
    ) -> None:
        """An action whose payload is ``payload``: the handler gets it parsed.

        ``answer_refusal=False``: a refused payload is not answered to the agent (for reports
        whose answer would wake it).
        """
        self._handlers[action] = _Registered(handler, payload, answer_refusal)

    def set_authorizer(self, authorizer: Authorizer) -> None:
        """Install the single permission check run before every action (None = allowed)."""
        self._authorize = authorizer

    def names(self) -> list[str]:
        return sorted(self._handlers)

    async def run(self, session: SessionRow, row: OutboundRow) -> ActionResult:
        return await self._run(session, row, authorize=True)

    async def run_approved(self, session: SessionRow, row: OutboundRow) -> ActionResult:
        """Run an action an admin approved on an approval card (the authorizer already ran)."""
        return await self._run(session, row, authorize=False)

    async def _run(self, session: SessionRow, row: OutboundRow, *, authorize: bool) -> ActionResult:
        action = str(row.content.get("action") or "")
        registered = self._handlers.get(action)
        if registered is None:
            return ActionResult(ActionStatus.ERROR, f"unknown action {action!r}")
        payload: Payload | None = None
        if registered.payload is not None:
            try:
                payload = parse_payload(registered.payload, row.content)
            except PayloadError as exc:
                return ActionResult(
                    ActionStatus.ERROR,
                    f"{action}: {exc}",
                    reply_to_agent=registered.answer_refusal,
                )
        if authorize and self._authorize is not None:
            refusal = await self._authorize(session, row)
            if isinstance(refusal, ActionResult):
                return refusal
            if refusal is not None:
                return ActionResult(ActionStatus.ERROR, refusal)
        return await registered.call(session, row, payload)
