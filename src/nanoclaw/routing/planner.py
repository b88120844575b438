"""The routing decision (upstream §3): one central-DB transaction of facts in, a ``RoutePlan`` out.

``RoutePlanner.plan`` is synchronous and does no I/O but the one ``Repository.route_facts``
transaction (which registers a new chat on a mention and creates or renames the sender): it
reads the chat's messaging group, the sender, the wirings, each wiring's active session and the
chat's open approval cards, then
decides engage, access, scope and the command gate per wiring without touching a session file
or a channel. ``PlanApplier`` carries the plan out.
"""

from __future__ import annotations

from nanoclaw.channels.base import InboundEvent
from nanoclaw.db.models import MessagingGroup, Wiring
from nanoclaw.db.repository import Membership, NewChat, Repository, RouteFacts, SessionKey
from nanoclaw.permissions.access import can_access, is_admin_of
from nanoclaw.routing.command_gate import GateDecision, gate, is_gated_command
from nanoclaw.routing.engage import engages
from nanoclaw.routing.modes import DropReason, EngageMode, SessionMode
from nanoclaw.routing.plan import (
    ApprovalKind,
    PlannedApproval,
    PlannedDrop,
    PlannedWrite,
    RoutePlan,
)

# A chat first seen through a mention asks the operator before anyone may talk in it.
NEW_CHAT_SENDER_POLICY = "request_approval"


def user_id_for(event: InboundEvent) -> str | None:
    handle = event.message.sender
    if not handle:
        return None
    return handle if ":" in handle else f"{event.channel_type}:{handle}"


def routed_message_id(event: InboundEvent, agent_group_id: str) -> str:
    """The ``messages_in`` id of a routed message: unique per chat, not just per platform id.

    Platform ids are unique only within a chat (a Telegram message id, a Slack ts), so the
    chat is part of the id: two chats of one agent-shared session that reuse an id both
    arrive. The platform id itself travels in the content as ``platform_message_id``.
    """
    return routed_id(event.channel_type, event.platform_id, event.message.id, agent_group_id)


def routed_id(channel_type: str, platform_id: str, message_id: str, agent_group_id: str) -> str:
    """See ``routed_message_id``; for callers that hold the parts, not the event."""
    return f"{channel_type}:{platform_id}:{message_id}:{agent_group_id}"


class RoutePlanner:
    def __init__(
        self, *, repo: Repository, threaded_channels: frozenset[str] = frozenset()
    ) -> None:
        self.repo = repo
        self.threaded_channels = threaded_channels

    def plan(self, event: InboundEvent) -> RoutePlan:
        """Decide what ``event`` causes; blocking (one central-DB transaction)."""
        msg = event.message
        if event.channel_type not in self.threaded_channels and event.thread_id is not None:
            event = InboundEvent(event.channel_type, event.platform_id, None, msg)
        user_id = user_id_for(event)
        facts = self.repo.route_facts(
            event.channel_type,
            event.platform_id,
            user_id=user_id,
            user_kind=event.channel_type,
            display_name=msg.sender_name,
            new_chat=(
                NewChat(is_group=msg.is_group, unknown_sender_policy=NEW_CHAT_SENDER_POLICY)
                if msg.is_mention
                else None
            ),
            session_key=lambda mg, wiring: self.session_key(event, mg, wiring),
        )
        return self.decide(event, user_id, facts)

    def session_key(self, event: InboundEvent, mg: MessagingGroup, wiring: Wiring) -> SessionKey:
        """The session ``wiring`` routes ``event`` to (its mode; the thread for per-thread)."""
        mode = self._session_mode(event, mg, wiring)
        thread = event.thread_id if mode == SessionMode.PER_THREAD else None
        return SessionKey(wiring.agent_group_id, mg.id, thread, mode)

    def decide(self, event: InboundEvent, user_id: str | None, facts: RouteFacts) -> RoutePlan:
        """The pure part: the plan for ``event`` given the facts read for it."""
        msg = event.message
        mg, membership = facts.messaging_group, facts.membership
        if mg is None:
            return RoutePlan(event, user_id, dropped=DropReason.UNKNOWN_CHAT)
        base = RoutePlan(event, user_id, mg, membership, open_cards=facts.open_cards)
        if not facts.wirings:
            if not msg.is_mention:
                return _dropped(base, DropReason.UNKNOWN_CHAT)
            if mg.denied_at is not None:
                return _dropped(base, DropReason.CHANNEL_DENIED)
            return _dropped(
                base,
                DropReason.NO_AGENT_WIRED,
                drops=(PlannedDrop(DropReason.NO_AGENT_WIRED),),
                approvals=(PlannedApproval(ApprovalKind.UNWIRED_CHAT),),
            )
        writes: list[PlannedWrite] = []
        drops: list[PlannedDrop] = []
        approvals: list[PlannedApproval] = []
        refusal: DropReason | None = None
        denial: str | None = None
        for wiring in facts.wirings:
            result = self._consider(event, mg, wiring, user_id, membership, facts, drops, approvals)
            if isinstance(result, PlannedWrite):
                writes.append(result)
            elif isinstance(result, DropReason):
                refusal = refusal or result
            elif result is not None:  # a command-gate denial
                denial = denial or result.reply
                refusal = refusal or DropReason.PERMISSION_DENIED
        dropped: DropReason | None = None
        if not writes:
            dropped = refusal or DropReason.NO_AGENT_ENGAGED
            if dropped == DropReason.NO_AGENT_ENGAGED:
                drops.append(PlannedDrop(dropped))
        return RoutePlan(
            event,
            user_id,
            mg,
            membership,
            writes=tuple(writes),
            drops=tuple(drops),
            approvals=tuple(approvals),
            replies=(denial,) if denial is not None else (),  # once, however many refused
            dropped=dropped,
            open_cards=facts.open_cards,
        )

    def _consider(
        self,
        event: InboundEvent,
        mg: MessagingGroup,
        wiring: Wiring,
        user_id: str | None,
        membership: Membership | None,
        facts: RouteFacts,
        drops: list[PlannedDrop],
        approvals: list[PlannedApproval],
    ) -> PlannedWrite | DropReason | GateDecision | None:
        """One wiring: a write, a refusal reason, a command-gate denial, or None (skipped)."""
        msg = event.message
        ag = wiring.agent_group_id
        key = self.session_key(event, mg, wiring)
        found = facts.sessions.get(key)
        has_active = (
            wiring.engage_mode == EngageMode.MENTION_STICKY
            and not msg.is_mention
            and mg.is_group
            and found is not None
        )
        engaged = engages(
            engage_mode=wiring.engage_mode,
            engage_pattern=wiring.engage_pattern,
            text=msg.text,
            is_mention=msg.is_mention,
            is_group=msg.is_group,
            has_active_session=has_active,
        )
        allowed = mg.unknown_sender_policy == "public" or can_access(membership, ag)
        if not allowed:
            if not engaged:
                return None
            if mg.unknown_sender_policy == "request_approval":
                drops.append(PlannedDrop(DropReason.UNKNOWN_SENDER_REQUEST_APPROVAL, ag))
                if user_id is not None:
                    approvals.append(PlannedApproval(ApprovalKind.UNKNOWN_SENDER, wiring))
                return DropReason.UNKNOWN_SENDER_REQUEST_APPROVAL
            drops.append(PlannedDrop(DropReason.UNKNOWN_SENDER_STRICT, ag))
            return DropReason.UNKNOWN_SENDER_STRICT
        if wiring.sender_scope == "known" and not can_access(membership, ag):
            if engaged:
                drops.append(PlannedDrop(DropReason.SENDER_SCOPE, ag))
                return DropReason.SENDER_SCOPE
            return None
        if not engaged and wiring.ignored_message_policy != "accumulate":
            return None
        if msg.kind == "chat":
            # The gate holds whatever the wiring's policy: a command is never stored as a
            # context row (an accumulated /clear would wipe the conversation later).
            decision = gate(msg.text, is_admin=is_admin_of(membership, ag))
            if decision.action == "drop":
                return DropReason.COMMAND_FILTERED
            if decision.action == "deny":
                return decision
            if not engaged and is_gated_command(msg.text):
                return None
        return PlannedWrite(
            agent_group_id=ag,
            agent_folder=facts.folders[ag],
            session_id=found.id if found is not None else None,
            messaging_group_id=mg.id,
            thread_id=key.thread_id,
            mode=SessionMode(key.mode),
            message_id=routed_message_id(event, ag),
            trigger=1 if engaged else 0,
        )

    def _session_mode(self, event: InboundEvent, mg: MessagingGroup, wiring: Wiring) -> str:
        if wiring.session_mode == SessionMode.AGENT_SHARED:
            return SessionMode.AGENT_SHARED
        if event.channel_type in self.threaded_channels and mg.is_group and event.thread_id:
            return SessionMode.PER_THREAD
        return wiring.session_mode


def _dropped(
    base: RoutePlan,
    reason: DropReason,
    *,
    drops: tuple[PlannedDrop, ...] = (),
    approvals: tuple[PlannedApproval, ...] = (),
) -> RoutePlan:
    return RoutePlan(
        base.event,
        base.user_id,
        base.messaging_group,
        base.membership,
        drops=drops,
        approvals=approvals,
        dropped=reason,
        open_cards=base.open_cards,
    )
