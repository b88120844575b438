"""Host actions requested by agents, authorized by the ORIGINATING user's role (invariant 7)."""

# ``ActionGate.authorize`` is the one authorizer installed on ``SystemActions``. The
# originating user is decided by ``nanoclaw.delivery.origin`` from facts the host recorded
# when it first read the request (which inbound rows it had written, from whom, and which it
# had seen finished before): never from the request's seq, timestamps or other runner-written
# fields, and any ambiguity (a mixed batch, another user's queued row) counts as nobody.
# Gated actions run at once for an admin of the agent group, and
# otherwise go through an approval card; refusals and denials are reported to the agent and
# to the chat. ``admin_request`` gives admin-scoped agents reads within their scope and
# writes through the same gate; no agent can change an admin scope.

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from nanoclaw.admin.service import Actor, AdminService, Table
from nanoclaw.admin.store import AdminStore
from nanoclaw.contract.actions import ActionName, ActionStatus, AdminRequestPayload, parse_payload
from nanoclaw.contract.layout import SessionLayout
from nanoclaw.db.models import PendingApproval, SessionRow
from nanoclaw.db.repository import Repository
from nanoclaw.delivery.actions import ActionResult, SystemActions, action_result_content
from nanoclaw.delivery.origin import OriginLedger
from nanoclaw.errors import NanoclawError, NotFoundError, PayloadError
from nanoclaw.executors import Executors
from nanoclaw.permissions.access import is_admin_of
from nanoclaw.permissions.approvals import ApprovalService
from nanoclaw.sessions.outbound_reader import OutboundRow, SessionReader
from nanoclaw.sessions.service import SessionService

log = logging.getLogger("nanoclaw.permissions.actions")

# Host actions that change what exists or what an agent can do: approval unless an admin asked.
GATED_ACTIONS = frozenset(
    {
        ActionName.CREATE_AGENT,
        ActionName.INSTALL_PACKAGES,
        ActionName.ADD_MCP_SERVER,
        ActionName.ADD_MOUNT,
        ActionName.ADD_DESTINATION,
        ActionName.REMOVE_DESTINATION,
        ActionName.WIRE_CHAT,
        ActionName.UNWIRE_CHAT,
        ActionName.RESTART_AGENT,
    }
)  # every name here has a handler (tests/unit/test_agent_surface.py walks the list)
ADMIN_REQUEST = ActionName.ADMIN_REQUEST
READ_OPS = frozenset(
    {
        "agents.list",
        "channels.list",
        "wirings.list",
        "users.list",
        "roles.list",
        "members.list",
        "sessions.list",
        "sessions.get",
        "approvals.list",
        "dropped.list",
    }
)
WRITE_OPS = frozenset(
    {
        "agents.create",
        "wire",
        "unwire",
        "engage",
        "policy",
        "members.add",
        "members.remove",
        "roles.grant",
        "roles.revoke",
    }
)

WriteToAgent = Callable[..., Awaitable[None]]
Say = Callable[[str | None, str | None, str], Awaitable[None]]


def _row_to_json(row: OutboundRow) -> dict[str, Any]:
    return asdict(row)


def _row_from_json(data: dict[str, Any]) -> OutboundRow:
    return OutboundRow(**data)


def summarize(action: str, content: dict[str, Any]) -> str:
    details = {k: v for k, v in content.items() if k != "action"}
    text = json.dumps(details, ensure_ascii=False, sort_keys=True)
    return f"Action {action}: {text[:600]}"


class ActionGate:
    def __init__(
        self,
        *,
        executors: Executors,
        repo: Repository,
        store: AdminStore,
        admin: AdminService,
        approvals: ApprovalService,
        sessions: SessionService,
        reader: SessionReader,
        actions: SystemActions,
        write_to_agent: WriteToAgent,
        origins: OriginLedger,
        gated: frozenset[str] = GATED_ACTIONS,
    ) -> None:
        self.executors = executors
        self.repo = repo
        self.store = store
        self.admin = admin
        self.approvals = approvals
        self.sessions = sessions
        self.reader = reader
        self.actions = actions
        self.write_to_agent = write_to_agent
        self.origins = origins
        self.gated = set(gated)
        self._acting: dict[str, Actor] = {}  # system row id → who the approved action runs as

    def install(self) -> None:
        self.actions.set_authorizer(self.authorize)
        self.actions.register_payload(ADMIN_REQUEST, AdminRequestPayload, self.admin_request)

    def gate(self, action: str) -> None:
        """Mark another action as gated (for modules that register their own actions)."""
        self.gated.add(action)

    # -- who asked -----------------------------------------------------------------------------
    def origin_user_sync(self, session: SessionRow, row: OutboundRow) -> str | None:
        # Decided by the delivery pass that first read the row; only the row's id is used.
        return self.origins.origin(session.id, row.id)

    def acting_actor(self, session: SessionRow, row: OutboundRow) -> Actor:
        """Who an allowed gated action runs as: its approver, else the originating user."""
        approved = self._acting.get(row.id)
        if approved is not None:
            return approved
        user_id = self.origin_user_sync(session, row)
        return Actor.user(self.repo.membership(user_id), user_id)

    # -- the authorizer ------------------------------------------------------------------------
    async def authorize(self, session: SessionRow, row: OutboundRow) -> str | ActionResult | None:
        action = str(row.content.get("action") or "")
        if action == ADMIN_REQUEST:
            return await self._authorize_admin_request(session, row)
        if action not in self.gated:
            return None
        user_id = await self.executors.central.run(self.origin_user_sync, session, row)
        membership = await self.executors.central.run(self.repo.membership, user_id)
        if is_admin_of(membership, session.agent_group_id):
            return None
        return await self._request_approval(session, row, action, user_id)

    async def _authorize_admin_request(
        self, session: SessionRow, row: OutboundRow
    ) -> str | ActionResult | None:
        try:  # parsed before this runs (SystemActions), so a refusal here is not expected
            request = parse_payload(AdminRequestPayload, row.content)
        except PayloadError as exc:
            return f"{ADMIN_REQUEST}: {exc}"
        op, args = request.op, request.args or {}
        if "scope" in op or "admin_scope" in args:
            return "Permission denied: no agent can change an admin scope."
        if op not in READ_OPS | WRITE_OPS:
            known = ", ".join(sorted(READ_OPS | WRITE_OPS))
            return f"unknown admin op {op!r}; known ops: {known}"
        scope = await self.executors.central.run(self.store.admin_scope, session.agent_group_id)
        if scope == "disabled":
            return "Permission denied: admin requests are disabled for this agent."
        if op in READ_OPS:
            self._acting[row.id] = Actor.agent(session.agent_group_id, scope)
            return None
        try:
            target = await self.executors.central.run(self._target_group, session, op, args)
        except NanoclawError as exc:
            return str(exc)
        agent_actor = Actor.agent(session.agent_group_id, scope)
        if not agent_actor.can_read(target):
            return f"Permission denied: {op} is outside this agent's admin scope ({scope})."
        user_id = await self.executors.central.run(self.origin_user_sync, session, row)
        membership = await self.executors.central.run(self.repo.membership, user_id)
        user_actor = Actor.user(membership, user_id)
        if membership is not None and user_actor.can_write(target):
            self._acting[row.id] = user_actor
            return None
        return await self._request_approval(session, row, f"{ADMIN_REQUEST} {op}", user_id)

    def _target_group(self, session: SessionRow, op: str, args: dict[str, Any]) -> str | None:
        """The agent group a write touches (None = global); ``group`` scope defaults to its own."""
        if op in ("agents.create", "policy") or (op.startswith("roles.") and not args.get("agent")):
            return None
        agent = args.get("agent")
        if not agent:
            return session.agent_group_id  # what ``_run_op`` acts on when none is named
        return self.repo.agent_group(str(agent)).id

    async def _request_approval(
        self, session: SessionRow, row: OutboundRow, action: str, user_id: str | None
    ) -> ActionResult:
        async def tell_pending(opened: PendingApproval) -> None:
            # Written before the card goes out: an approver can answer at once, and the
            # agent must see "pending" before the decision, never after it.
            await self._result(
                session,
                await self.executors.central.run(self.sessions.layout, session),
                row,
                ActionStatus.PENDING,
                f"{action} needs an admin's approval; request {opened.id} was sent.",
                id_hint=f"result-{row.id}",
            )

        approval = await self.approvals.request_action(
            agent_group_id=session.agent_group_id,
            session_id=session.id,
            action=action,
            summary=summarize(action, row.content),
            payload={"row": _row_to_json(row)},
            requester_user_id=user_id,
            origin_channel_type=row.channel_type,
            before_card=tell_pending,
        )
        if approval is None:
            await self.approvals.say(
                row.channel_type,
                row.platform_id,
                f"Permission denied: {action} needs an admin, and none is reachable.",
            )
            return ActionResult(
                ActionStatus.ERROR,
                f"{action} failed: it needs an admin's approval and no admin is reachable.",
            )
        return ActionResult(
            ActionStatus.PENDING, f"request {approval.id} was sent", reply_to_agent=False
        )

    # -- after a card is answered ----------------------------------------------------------------
    async def decided(self, approval: PendingApproval, approved: bool | None, by: str) -> str:
        payload = json.loads(approval.payload_json)
        row = _row_from_json(payload["row"])
        try:
            session = await self.executors.central.run(self.repo.session, approval.session_id or "")
        except NotFoundError:
            return "The requesting session no longer exists."
        layout = await self.executors.central.run(self.sessions.layout, session)
        action = approval.action or str(row.content.get("action"))
        if approved is None:
            await self._result(
                session,
                layout,
                row,
                ActionStatus.ERROR,
                f"Your {action} request expired without an answer.",
            )
            return "Expired."
        if not approved:
            await self._result(
                session,
                layout,
                row,
                ActionStatus.ERROR,
                f"Your {action} request was denied by an admin.",
            )
            await self.approvals.say(
                row.channel_type,
                row.platform_id,
                f"Your request ({action}) was denied by an admin.",
            )
            return f"Denied: {action}."
        membership = await self.executors.central.run(self.repo.membership, by)
        self._acting[row.id] = Actor.user(membership, by)
        try:
            result = await self.actions.run_approved(session, row)
        except NanoclawError as exc:
            result = ActionResult(ActionStatus.ERROR, str(exc))
        finally:
            self._acting.pop(row.id, None)
        await self._result(session, layout, row, result.status, result.text)
        return f"✅ Approved: {result.text}"

    async def _result(
        self,
        session: SessionRow,
        layout: SessionLayout,
        row: OutboundRow,
        status: ActionStatus,
        text: str,
        *,
        id_hint: str | None = None,
    ) -> None:
        await self.write_to_agent(
            session,
            layout,
            action_result_content(row, status, text),
            kind="system",
            trigger=1,
            id_hint=id_hint or f"decision-{row.id}",
        )

    # -- the admin_request action ----------------------------------------------------------------
    async def admin_request(
        self, session: SessionRow, row: OutboundRow, request: AdminRequestPayload
    ) -> ActionResult:
        actor = self._acting.pop(row.id, None)
        if actor is None:
            return ActionResult(ActionStatus.ERROR, f"{ADMIN_REQUEST} was not authorized")
        op, args = request.op, dict(request.args or {})
        try:
            text = await self.executors.central.run(self._run_op, actor, session, op, args)
        except NanoclawError as exc:
            return ActionResult(ActionStatus.ERROR, str(exc))
        return ActionResult(ActionStatus.OK, text)

    def _run_op(self, actor: Actor, session: SessionRow, op: str, args: dict[str, Any]) -> str:
        a = self.admin
        if op in READ_OPS:
            agent = a.agent(str(args["agent"])) if args.get("agent") else None
            tables: dict[str, Callable[[], Table]] = {
                "agents.list": lambda: a.agents(actor),
                "channels.list": lambda: a.channels(actor),
                "wirings.list": lambda: a.wirings(actor),
                "users.list": lambda: a.users(actor),
                "roles.list": lambda: a.roles(actor),
                "members.list": lambda: a.members(actor, agent),
                "sessions.list": lambda: a.sessions(actor, agent),
                "approvals.list": lambda: a.approvals(actor),
                "dropped.list": lambda: a.dropped(actor),
            }
            if op == "sessions.get":
                return json.dumps(a.session(actor, str(args.get("id") or "")))
            return json.dumps(tables[op]().rows, default=str)
        agent_key = str(args.get("agent") or session.agent_group_id)
        if op == "agents.create":
            group = a.create_agent(actor, str(args.get("name") or ""), args.get("folder"))
            return f"Agent {group.name} created ({group.id})."
        if op in ("wire", "unwire", "engage", "policy"):
            chat = a.chat(str(args.get("chat") or ""), create=op == "wire")
            if op == "policy":
                a.set_policy(actor, chat, str(args.get("policy") or ""))
                return f"Policy of {chat.channel_type}/{chat.platform_id}: {args.get('policy')}."
            agent_group = a.agent(agent_key)
            if op == "wire":
                a.wire(
                    actor,
                    chat,
                    agent_group,
                    engage_mode=str(args.get("engage") or "pattern"),
                    engage_pattern=args.get("pattern", "."),
                    session_mode=str(args.get("session_mode") or "shared"),
                )
                return f"Wired {chat.channel_type}/{chat.platform_id} to {agent_group.name}."
            if op == "unwire":
                a.unwire(actor, chat, agent_group)
                return f"Unwired {chat.channel_type}/{chat.platform_id} from {agent_group.name}."
            a.update_wiring(
                actor,
                chat,
                agent_group,
                engage_mode=str(args.get("engage") or "pattern"),
                engage_pattern=args.get("pattern"),
            )
            return "Engage mode updated."
        if op in ("members.add", "members.remove"):
            agent_group = a.agent(agent_key)
            user = str(args.get("user") or "")
            if op == "members.add":
                a.add_member(actor, agent_group, user)
                return f"{user} added to {agent_group.name}."
            a.remove_member(actor, agent_group, user)
            return f"{user} removed from {agent_group.name}."
        role_agent = a.agent(str(args["agent"])) if args.get("agent") else None
        if op == "roles.grant":
            a.grant(actor, str(args.get("user") or ""), str(args.get("role") or ""), role_agent)
            return "Role granted."
        a.revoke(actor, str(args.get("user") or ""), str(args.get("role") or ""), role_agent)
        return "Role revoked."
