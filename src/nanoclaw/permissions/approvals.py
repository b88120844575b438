"""Approval flows (upstream §8): unknown senders, unwired chats and gated host actions.

A request becomes a ``pending_approvals`` row and a card delivered to the approver's DM
(scoped admins → global admins → owners; the origin's channel type first). Answers come
as button clicks (``ChannelSetup.on_action``), as a number replied in the card's chat,
or through ``/approve`` and the CLI. Every answer is authorized (the approver or an admin
of the card's agent group), a request is decided exactly once, and cards expire.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from typing import Any

from nanoclaw.admin.store import AdminStore, NewApproval
from nanoclaw.channels.base import (
    Attachment,
    Card,
    CardOption,
    InboundEvent,
    InboundMessage,
)
from nanoclaw.channels.cards import Refusal
from nanoclaw.channels.registry import ChannelRegistry
from nanoclaw.contract.timeutil import utc_now
from nanoclaw.db.models import AgentGroup, MessagingGroup, PendingApproval, Wiring
from nanoclaw.db.repository import Membership, Repository
from nanoclaw.delivery.notices import Notifier
from nanoclaw.errors import NanoclawError
from nanoclaw.executors import Executors
from nanoclaw.permissions.access import can_answer, order_for_delivery, pick_approvers
from nanoclaw.sessions.service import SessionService

log = logging.getLogger("nanoclaw.approvals")

APPROVAL_TTL_S = 24 * 3600.0
EXPIRY_CHECK_INTERVAL_S = 30.0
MAX_AGENT_OPTIONS = 20
APPROVE, DENY = "approve", "deny"
CONNECT_PREFIX, NEW_AGENT, REJECT = "connect:", "new_agent", "reject"

RouteFn = Callable[[InboundEvent], Awaitable[object]]
# (approval, approved (None = expired), decided_by) → text for the approver
ActionDecider = Callable[[PendingApproval, bool | None, str], Awaitable[str]]
AgentFactory = Callable[[str], AgentGroup]


def event_to_json(event: InboundEvent) -> dict[str, Any]:
    data = asdict(event)
    for att in data["message"]["attachments"]:
        if att.get("data") is not None:
            att["data"] = base64.b64encode(att["data"]).decode()
    return data


def event_from_json(data: dict[str, Any]) -> InboundEvent:
    msg = dict(data["message"])
    msg["attachments"] = tuple(
        Attachment(
            name=a["name"],
            mime=a.get("mime"),
            data=base64.b64decode(a["data"]) if a.get("data") is not None else None,
            url=a.get("url"),
        )
        for a in msg.get("attachments") or ()
    )
    return InboundEvent(
        channel_type=data["channel_type"],
        platform_id=data["platform_id"],
        thread_id=data.get("thread_id"),
        message=InboundMessage(**msg),
    )


def options_of(approval: PendingApproval) -> list[dict[str, str]]:
    return list(json.loads(approval.options_json or "[]"))


def chat_label(mg: MessagingGroup) -> str:
    return (
        f"{mg.name} ({mg.channel_type}/{mg.platform_id})"
        if mg.name
        else (f"{mg.channel_type}/{mg.platform_id}")
    )


class ApprovalService:
    def __init__(
        self,
        *,
        executors: Executors,
        repo: Repository,
        store: AdminStore,
        channels: ChannelRegistry,
        create_agent: AgentFactory,
        route: RouteFn,
        action_decider: ActionDecider,
        sessions: SessionService | None = None,
        notices: Notifier | None = None,
        ttl_s: float = APPROVAL_TTL_S,
    ) -> None:
        self.executors = executors
        self.repo = repo
        self.sessions = sessions  # to re-project destinations after connecting a chat
        self.store = store
        self.channels = channels
        self.notices: Notifier = notices or channels  # denials and results to chats
        self.create_agent = create_agent
        self.ttl_s = ttl_s
        self._route = route  # an approved sender's message goes through the router again
        self._action_decider = action_decider  # the action gate runs an approved agent action

    # -- the router's seam -----------------------------------------------------------------------
    async def on_unknown_sender(
        self, event: InboundEvent, mg: MessagingGroup, wiring: Wiring, user_id: str | None
    ) -> None:
        if user_id is None:
            return
        try:
            agent = await self.executors.central.run(self.repo.agent_group, wiring.agent_group_id)
            name = event.message.sender_name or user_id
            new = NewApproval(
                kind="sender",
                title="👤 New sender",
                question=(
                    f"{name} ({user_id}) wants to talk to {agent.name} in {chat_label(mg)}. Allow?"
                ),
                options=[{"label": "Allow", "value": APPROVE}, {"label": "Deny", "value": DENY}],
                payload={"event": event_to_json(event), "sender_name": name},
                ttl_s=self.ttl_s,
                dedup_key=f"sender:{mg.id}:{user_id}",
                messaging_group_id=mg.id,
                agent_group_id=agent.id,
                requester_user_id=user_id,
            )
            await self._open(new, origin_channel_type=event.channel_type)
        except NanoclawError:
            log.exception("sender approval for %s failed", user_id)

    async def on_unwired_chat(
        self, event: InboundEvent, mg: MessagingGroup, user_id: str | None
    ) -> None:
        try:
            agents = await self.executors.central.run(self.repo.agent_groups)
            if not agents:
                log.info("unwired chat %s: no agents to connect it to", mg.id)
                return
            options = [
                {"label": f"Connect to {a.name}", "value": f"{CONNECT_PREFIX}{a.id}"}
                for a in agents[:MAX_AGENT_OPTIONS]
            ]
            options += [
                {"label": "Create a new agent", "value": NEW_AGENT},
                {"label": "Reject (keep this chat silent)", "value": REJECT},
            ]
            who = event.message.sender_name or user_id or "someone"
            if event.message.is_group:
                title = "📣 Bot mentioned in new channel"
                question = f"{who} mentioned the assistant in {chat_label(mg)}, which has no agent."
            else:
                title = "💬 New direct message"
                question = f"{who} wrote in {chat_label(mg)}, which has no agent."
            preview = event.message.text[:200]
            new = NewApproval(
                kind="channel",
                title=title,
                question=f"{question}\nMessage: {preview}",
                options=options,
                payload={"event": event_to_json(event), "is_group": event.message.is_group},
                ttl_s=self.ttl_s,
                dedup_key=f"channel:{mg.id}",
                messaging_group_id=mg.id,
                requester_user_id=user_id,
            )
            await self._open(new, origin_channel_type=event.channel_type)
        except NanoclawError:
            log.exception("channel registration for %s failed", mg.id)

    async def request_action(
        self,
        *,
        agent_group_id: str,
        session_id: str,
        action: str,
        summary: str,
        payload: dict[str, Any],
        requester_user_id: str | None,
        origin_channel_type: str | None,
        before_card: Callable[[PendingApproval], Awaitable[None]] | None = None,
    ) -> PendingApproval | None:
        """Open a card for a host action an agent asked for; None when no approver is reachable.

        ``before_card`` runs once the request exists and before any card is sent, so whatever
        it records (the "pending" result) precedes any answer to the card.
        """
        agent = await self.executors.central.run(self.repo.agent_group, agent_group_id)
        who = requester_user_id or "no known user (a task or another agent)"
        new = NewApproval(
            kind="action",
            title=f"🔧 {agent.name} asks: {action}",
            question=f"{summary}\nRequested for: {who}",
            options=[{"label": "Approve", "value": APPROVE}, {"label": "Deny", "value": DENY}],
            payload=payload,
            ttl_s=self.ttl_s,
            agent_group_id=agent_group_id,
            session_id=session_id,
            requester_user_id=requester_user_id,
            action=action,
        )
        return await self._open(
            new, origin_channel_type=origin_channel_type, before_card=before_card
        )

    # -- cards -------------------------------------------------------------------------------------
    async def _open(
        self,
        new: NewApproval,
        *,
        origin_channel_type: str | None,
        before_card: Callable[[PendingApproval], Awaitable[None]] | None = None,
    ) -> PendingApproval | None:
        grants = await self.executors.central.run(self.store.role_grants)
        approvers = order_for_delivery(
            pick_approvers(grants, new.agent_group_id), origin_channel_type
        )
        if not approvers:
            log.warning("no approver for a %s request (no owner or admin)", new.kind)
            return None
        approval = await self.executors.central.run(self.store.create_approval, new)
        if approval is None:
            return None  # already pending (deduplicated)
        if before_card is not None:
            await before_card(approval)
        for approver in approvers:
            if await self._deliver_card(approval, approver):
                return await self.executors.central.run(self.store.approval, approval.id)
        log.warning("approval %s: no approver has a reachable DM", approval.id)
        await self.executors.central.run(self.store.drop_approval, approval.id)
        return None

    async def _deliver_card(self, approval: PendingApproval, approver: str) -> bool:
        dm = await self.ensure_user_dm(approver)
        if dm is None:
            return False
        adapter = self.channels.get(dm.channel_type)
        if adapter is None:
            return False
        card = Card(
            question_id=approval.id,
            title=approval.title,
            question=approval.question,
            options=tuple(CardOption(o["label"], o["value"]) for o in options_of(approval)),
        )
        # Record where the card goes first, so an immediate numbered answer finds it.
        await self.executors.central.run(self._record_card, approval.id, approver, dm, None)
        try:
            message_id = await adapter.deliver(dm.platform_id, None, card.payload())
        except Exception:
            log.exception("card %s to %s failed", approval.id, approver)
            return False
        if message_id:
            await self.executors.central.run(
                self._record_card, approval.id, approver, dm, message_id
            )
        return True

    def _record_card(
        self, approval_id: str, approver: str, dm: MessagingGroup, message_id: str | None
    ) -> None:
        self.store.set_card(approval_id, dm.channel_type, dm.platform_id, message_id)
        with self.store.db.session() as s:
            row = s.get(PendingApproval, approval_id)
            if row is not None:
                row.approver_user_id = approver

    async def ensure_user_dm(self, user_id: str) -> MessagingGroup | None:
        """The user's DM chat: cached, else opened through the adapter and remembered."""
        if ":" not in user_id:
            return None
        channel_type, handle = user_id.split(":", 1)
        cached = await self.executors.central.run(self.store.user_dm, user_id, channel_type)
        if cached is not None:
            mg = await self.executors.central.run(self.repo.messaging_group_by_id, cached)
            if mg is not None:
                return mg
        adapter = self.channels.get(channel_type)
        if adapter is None:
            return None
        try:
            platform_id = await adapter.open_dm(handle)
        except Exception:
            log.exception("opening a DM with %s failed", user_id)
            return None
        if not platform_id:
            return None
        mg = await self.executors.central.run(
            self.repo.ensure_messaging_group,
            channel_type=channel_type,
            platform_id=platform_id,
            name=f"DM {handle}",
            is_group=False,
            unknown_sender_policy="strict",
        )
        await self.executors.central.run(self.store.set_user_dm, user_id, channel_type, mg.id)
        return mg

    async def say(self, channel_type: str | None, platform_id: str | None, text: str) -> None:
        await self.notices.notify(channel_type, platform_id, None, text)

    # -- answers -----------------------------------------------------------------------------------
    async def on_action(self, question_id: str, value: str, user_id: str) -> str | None:
        """A button click from an adapter (``ChannelSetup.on_action``)."""
        approval = await self.executors.central.run(self.store.approval, question_id)
        if approval is None:
            return None  # not ours (e.g. an ask_user_question card)
        membership = await self.executors.central.run(self.repo.membership, user_id)
        return await self.answer(approval.id, value, user_id=user_id, membership=membership)

    async def intercept(
        self,
        event: InboundEvent,
        membership: Membership | None,
        open_cards: Sequence[PendingApproval],
    ) -> bool:
        """Consume a numbered reply (or a new agent's name) to one of this chat's open cards
        (pending, newest first, as the route read them)."""
        if membership is None:
            return False
        cards = [
            c
            for c in open_cards
            if can_answer(
                membership, approver_user_id=c.approver_user_id, agent_group_id=c.agent_group_id
            )
        ]
        if not cards:
            return False
        text = event.message.text.strip()
        naming = next((c for c in cards if c.stage == "name"), None)
        if naming is not None and not text.startswith("/"):
            reply = await self._name_new_agent(naming, text, membership)
            await self.say(event.channel_type, event.platform_id, reply)
            return True
        if not text.isdigit():
            return False
        card = cards[0]
        options = options_of(card)
        number = int(text)
        if not 1 <= number <= len(options):
            await self.say(
                event.channel_type,
                event.platform_id,
                f"Reply with a number from 1 to {len(options)}.",
            )
            return True
        reply = await self.answer(
            card.id, options[number - 1]["value"], user_id=membership.user_id, membership=membership
        )
        await self.say(event.channel_type, event.platform_id, reply)
        return True

    async def answer(
        self,
        approval_id: str,
        value: str,
        *,
        user_id: str,
        membership: Membership | None,
        operator: bool = False,
    ) -> str:
        """Apply an answer after checking who gives it. Returns the text for the answerer."""
        approval = await self.executors.central.run(self.store.approval, approval_id)
        if approval is None:
            return f"No request {approval_id}."
        if not operator and not can_answer(
            membership,
            approver_user_id=approval.approver_user_id,
            agent_group_id=approval.agent_group_id,
        ):
            log.warning("unauthorized answer to %s by %s ignored", approval_id, user_id)
            return Refusal("You may not answer this request.")  # the card stays open
        if approval.status != "pending":
            return f"This request is already {approval.status}."
        if approval.expires_at <= utc_now():
            await self._expire(approval)
            return "This request has expired."
        values = {o["value"]: o["label"] for o in options_of(approval)}
        if value not in values:
            return Refusal(f"Unknown choice {value!r}.")
        if approval.kind == "sender":
            return await self._answer_sender(approval, value == APPROVE, user_id)
        if approval.kind == "channel":
            return await self._answer_channel(approval, value, user_id)
        return await self._answer_action(approval, value == APPROVE, user_id)

    async def _answer_sender(self, approval: PendingApproval, approved: bool, by: str) -> str:
        status = "approved" if approved else "denied"
        if not await self.executors.central.run(
            self.store.decide, approval.id, status=status, by=by, decision=status
        ):
            return "This request was already answered."
        payload = json.loads(approval.payload_json)
        name = payload.get("sender_name") or approval.requester_user_id
        if not approved:
            return f"Denied: {name} stays out."
        assert approval.requester_user_id and approval.agent_group_id
        await self.executors.central.run(
            self.repo.add_member, approval.requester_user_id, approval.agent_group_id, added_by=by
        )
        await self._replay(payload)
        return f"✅ Approved: {name} is now a member and their message was delivered."

    async def _answer_channel(self, approval: PendingApproval, value: str, by: str) -> str:
        if value == REJECT:
            if not await self.executors.central.run(
                self.store.decide, approval.id, status="denied", by=by, decision=value
            ):
                return "This request was already answered."
            assert approval.messaging_group_id
            await self.executors.central.run(
                self.store.set_denied, approval.messaging_group_id, True
            )
            return "Rejected: that chat stays silent from now on."
        if value == NEW_AGENT:
            await self.executors.central.run(self.store.set_stage, approval.id, "name")
            return "Reply with a name for the new agent (or 'cancel')."
        agent_id = value.removeprefix(CONNECT_PREFIX)
        if not await self.executors.central.run(
            self.store.decide, approval.id, status="approved", by=by, decision=value
        ):
            return "This request was already answered."
        agent = await self.executors.central.run(self.repo.agent_group, agent_id)
        await self._connect(approval, agent, by)
        return f"✅ Connected that chat to {agent.name}."

    async def _name_new_agent(
        self, approval: PendingApproval, text: str, membership: Membership
    ) -> str:
        if text.lower() == "cancel":
            await self.executors.central.run(self.store.set_stage, approval.id, None)
            return "Cancelled; the request is still open. Reply with a number."
        name = text.strip()[:64]
        try:
            agent = await self.executors.central.run(
                self._create_if_pending, approval.id, name, membership.user_id
            )
        except NanoclawError as exc:
            return f"Could not create {name!r}: {exc}. Reply with another name or 'cancel'."
        if agent is None:
            return "This request was already answered."
        await self._connect(approval, agent, membership.user_id)
        return f'✅ Agent "{agent.name}" created and connected.'

    def _create_if_pending(self, approval_id: str, name: str, by: str) -> AgentGroup | None:
        """The new agent, made and the card decided for it; None when the card was answered
        since it was read (then nothing is made). One central job: no other host work on the
        central DB runs between the look, the creation and the decision (the central executor
        has one thread); a writer outside the host deciding the card in between leaves the
        agent made and unconnected."""
        current = self.store.approval(approval_id)
        if current is None or current.status != "pending":
            return None
        agent = self.create_agent(name)
        # Only a writer outside this host could decide the card in between.
        decided = self.store.decide(
            approval_id, status="approved", by=by, decision=f"new:{agent.id}"
        )
        return agent if decided else None

    async def _connect(self, approval: PendingApproval, agent: AgentGroup, by: str) -> None:
        payload = json.loads(approval.payload_json)
        assert approval.messaging_group_id
        is_group = bool(payload.get("is_group"))
        await self.executors.central.run(
            self.repo.create_wiring,
            messaging_group_id=approval.messaging_group_id,
            agent_group_id=agent.id,
            engage_mode="mention-sticky" if is_group else "pattern",
            engage_pattern=None if is_group else ".",
            sender_scope="known",
            ignored_message_policy="accumulate",
            session_mode="shared",
        )
        if self.sessions is not None:
            await self.executors.central.run(self.sessions.project_agent, agent.id)
        if approval.requester_user_id:
            await self.executors.central.run(
                self.repo.add_member, approval.requester_user_id, agent.id, added_by=by
            )
        await self._replay(payload)

    async def _answer_action(self, approval: PendingApproval, approved: bool, by: str) -> str:
        status = "approved" if approved else "denied"
        if not await self.executors.central.run(
            self.store.decide, approval.id, status=status, by=by, decision=status
        ):
            return "This request was already answered."
        refreshed = await self.executors.central.run(self.store.approval, approval.id)
        assert refreshed is not None
        return await self._action_decider(refreshed, approved, by)

    async def _replay(self, payload: dict[str, Any]) -> None:
        if "event" not in payload:
            return
        try:
            await self._route(event_from_json(payload["event"]))
        except Exception:
            log.exception("replay after approval failed")

    # -- expiry ------------------------------------------------------------------------------------
    async def _expire(self, approval: PendingApproval) -> None:
        if not await self.executors.central.run(
            self.store.decide, approval.id, status="expired", by=None, decision="expired"
        ):
            return
        await self.say(
            approval.card_channel_type, approval.card_platform_id, f"⌛ Expired: {approval.title}"
        )
        if approval.kind == "action":
            refreshed = await self.executors.central.run(self.store.approval, approval.id)
            if refreshed is not None:
                await self._action_decider(refreshed, None, "expiry")

    async def expire_due(self) -> int:
        due = await self.executors.central.run(self.store.due_expiries)
        for approval in due:
            await self._expire(approval)
        return len(due)

    async def run_expiry(self, interval_s: float = EXPIRY_CHECK_INTERVAL_S) -> None:
        while True:
            try:
                await self.expire_due()
            except Exception:
                log.exception("approval expiry pass failed")
            await asyncio.sleep(interval_s)
