"""The router (upstream §3): event → messaging group → wirings → engage/access/scope → session rows.

It writes one ``messages_in`` row per engaged agent into that agent's session and wakes
it; ``accumulate`` wirings get context rows (trigger=0) that never wake a runner. What is
not delivered is recorded in the drop audit with its reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from dataclasses import dataclass, field
from typing import Protocol

from nanoclaw.channels.base import InboundEvent, RouteReceipt
from nanoclaw.contract.confined import create_file
from nanoclaw.contract.layout import SessionLayout
from nanoclaw.db.models import MessagingGroup, Wiring
from nanoclaw.db.repository import Membership, Repository
from nanoclaw.errors import NanoclawError
from nanoclaw.permissions.access import can_access, is_admin_of
from nanoclaw.routing.command_gate import GateDecision, gate, is_gated_command
from nanoclaw.routing.engage import engages
from nanoclaw.routing.modes import DropReason, EngageMode, SessionMode
from nanoclaw.routing.unhandled import UnhandledInbound
from nanoclaw.sessions.paths import safe_name
from nanoclaw.sessions.service import SessionService
from nanoclaw.sessions.store import InboundMessage
from nanoclaw.storage_errors import is_disk_full

log = logging.getLogger("nanoclaw.router")


class Waker(Protocol):
    async def wake(self, session_id: str) -> bool: ...


class Replier(Protocol):
    async def reply(self, event: InboundEvent, text: str) -> None: ...


class ApprovalSeam(Protocol):
    """Where the permissions issue plugs in its flows; the default only audits."""

    async def on_unknown_sender(
        self, event: InboundEvent, mg: MessagingGroup, wiring: Wiring, user_id: str | None
    ) -> None: ...

    async def on_unwired_chat(
        self, event: InboundEvent, mg: MessagingGroup, user_id: str | None
    ) -> None: ...


class HostCommands(Protocol):
    """Admin chat commands handled by the host; return True when the message was consumed."""

    async def handle(
        self, event: InboundEvent, mg: MessagingGroup, membership: Membership | None
    ) -> bool: ...


class NoApprovals:
    async def on_unknown_sender(
        self, event: InboundEvent, mg: MessagingGroup, wiring: Wiring, user_id: str | None
    ) -> None:
        return None

    async def on_unwired_chat(
        self, event: InboundEvent, mg: MessagingGroup, user_id: str | None
    ) -> None:
        return None


@dataclass(frozen=True)
class Delivery:
    session_id: str
    agent_group_id: str
    message_id: str
    seq: int
    trigger: int


@dataclass
class RouteOutcome:
    deliveries: list[Delivery] = field(default_factory=list)
    dropped: str | None = None
    consumed: bool = False

    def receipt(self) -> RouteReceipt:
        waiting = tuple(d.message_id for d in self.deliveries if d.trigger)
        if self.deliveries or self.consumed:
            return RouteReceipt(len(self.deliveries), waiting, consumed=self.consumed)
        texts: dict[str, str] = {
            DropReason.NO_AGENT_WIRED: "This chat is not wired to any agent.",
            DropReason.NO_AGENT_ENGAGED: "No agent in this chat engages with that message.",
            DropReason.UNKNOWN_SENDER_STRICT: "You are not allowed to talk to this agent.",
            DropReason.UNKNOWN_SENDER_REQUEST_APPROVAL: (
                "Your request to talk to this agent awaits approval."
            ),
            DropReason.SENDER_SCOPE: "Only known members may talk to this agent.",
            DropReason.CHANNEL_DENIED: "This chat was rejected by the operator.",
            DropReason.UNKNOWN_CHAT: "This chat is not known to NanoClaw.",
            DropReason.COMMAND_FILTERED: "That command is not available here.",
            DropReason.PERMISSION_DENIED: "Permission denied.",
            DropReason.STORAGE_FULL: (
                "Not accepted: the assistant's disk is full. Please try again later."
            ),
            DropReason.INTERNAL_ERROR: (
                "Not accepted: the assistant could not store your message. Please try again later."
            ),
        }
        reason = str(self.dropped or DropReason.NO_AGENT_ENGAGED)
        return RouteReceipt(0, (), reason=reason, text=texts.get(reason, reason))


def user_id_for(event: InboundEvent) -> str | None:
    handle = event.message.sender
    if not handle:
        return None
    return handle if ":" in handle else f"{event.channel_type}:{handle}"


def _inbox_folder(message_id: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9._-]", "_", message_id)[:48].strip("._") or "msg"
    return f"{readable}-{hashlib.sha1(message_id.encode()).hexdigest()[:8]}"


class Router:
    def __init__(
        self,
        *,
        repo: Repository,
        sessions: SessionService,
        waker: Waker,
        replier: Replier,
        approvals: ApprovalSeam | None = None,
        commands: HostCommands | None = None,
        threaded_channels: frozenset[str] = frozenset(),
        unhandled: UnhandledInbound | None = None,
    ) -> None:
        self.repo = repo
        self.unhandled = unhandled  # records a failed message, tells its sender, logs once
        self.sessions = sessions
        self.waker = waker
        self.replier = replier
        self.approvals: ApprovalSeam = approvals or NoApprovals()
        self.commands = commands
        self.threaded_channels = threaded_channels

    async def route(self, event: InboundEvent) -> RouteOutcome:
        """Route one event. Errors are logged and reported, never raised into the adapter."""
        try:
            return await self._route(event)
        except NanoclawError as exc:
            log.warning("route failed for %s/%s: %s", event.channel_type, event.platform_id, exc)
            return RouteOutcome(dropped=str(exc))
        except Exception as exc:
            # A full disk or a damaged DB: the sender is told the message was not accepted
            # (never a silently closed connection); nothing was acknowledged, so nothing is lost.
            if is_disk_full(exc):
                log.error(
                    "not accepted (disk full) for %s/%s", event.channel_type, event.platform_id
                )
                return RouteOutcome(dropped="storage_full")
            if self.unhandled is not None:
                await self.unhandled.handle(event, exc)
            else:
                log.exception("route failed for %s/%s", event.channel_type, event.platform_id)
            return RouteOutcome(dropped="internal_error")

    async def _route(self, event: InboundEvent) -> RouteOutcome:
        msg = event.message
        if event.channel_type not in self.threaded_channels and event.thread_id is not None:
            event = InboundEvent(event.channel_type, event.platform_id, None, msg)
        user_id = user_id_for(event)
        # One central-DB transaction for a known chat: messaging group, sender, wirings.
        facts = await asyncio.to_thread(
            self.repo.route_facts,
            event.channel_type,
            event.platform_id,
            user_id=user_id,
            user_kind=event.channel_type,
            display_name=msg.sender_name,
        )
        mg, membership, wirings = facts.messaging_group, facts.membership, facts.wirings
        if mg is None:
            if not msg.is_mention:
                return RouteOutcome(dropped=DropReason.UNKNOWN_CHAT)
            mg = await asyncio.to_thread(
                self.repo.ensure_messaging_group,
                channel_type=event.channel_type,
                platform_id=event.platform_id,
                is_group=msg.is_group,
                unknown_sender_policy="request_approval",
            )
            if user_id is not None:
                membership = await asyncio.to_thread(
                    self.repo.upsert_user,
                    user_id,
                    kind=event.channel_type,
                    display_name=msg.sender_name,
                )
        if self.commands is not None and await self.commands.handle(event, mg, membership):
            return RouteOutcome(consumed=True)

        if not wirings:
            if not msg.is_mention:
                return RouteOutcome(dropped=DropReason.UNKNOWN_CHAT)
            if mg.denied_at is not None:
                return RouteOutcome(dropped=DropReason.CHANNEL_DENIED)
            await self._drop(event, DropReason.NO_AGENT_WIRED, mg, user_id)
            await self.approvals.on_unwired_chat(event, mg, user_id)
            return RouteOutcome(dropped=DropReason.NO_AGENT_WIRED)

        outcome = RouteOutcome()
        refusal: str | None = None
        denial: str | None = None
        for wiring in wirings:
            result = await self._consider(event, mg, wiring, user_id, membership)
            if isinstance(result, Delivery):
                outcome.deliveries.append(result)
            elif isinstance(result, GateDecision):
                denial = denial or result.reply
                refusal = refusal or DropReason.PERMISSION_DENIED
            elif result is not None:
                refusal = refusal or result
        if denial is not None:  # once per message, however many wirings refused it
            await self.replier.reply(event, denial)
        if not outcome.deliveries:
            reason = refusal or DropReason.NO_AGENT_ENGAGED
            if reason == DropReason.NO_AGENT_ENGAGED:
                await self._drop(event, reason, mg, user_id)
            outcome.dropped = reason
        # Fanned-out sessions start side by side, not one after another.
        await asyncio.gather(
            *(self.waker.wake(d.session_id) for d in outcome.deliveries if d.trigger)
        )
        return outcome

    async def _consider(
        self,
        event: InboundEvent,
        mg: MessagingGroup,
        wiring: Wiring,
        user_id: str | None,
        membership: Membership | None,
    ) -> Delivery | GateDecision | str | None:
        """One wiring: a delivery, a command-gate denial, a refusal reason, or None (skipped)."""
        msg = event.message
        ag = wiring.agent_group_id
        mode = self._session_mode(event, mg, wiring)
        thread = event.thread_id if mode == SessionMode.PER_THREAD else None
        has_active = False
        if wiring.engage_mode == EngageMode.MENTION_STICKY and not msg.is_mention and mg.is_group:
            found = await asyncio.to_thread(
                self.repo.find_session,
                agent_group_id=ag,
                messaging_group_id=mg.id,
                thread_id=thread,
                mode=mode,
            )
            has_active = found is not None
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
                await self._drop(event, DropReason.UNKNOWN_SENDER_REQUEST_APPROVAL, mg, user_id, ag)
                if user_id is not None:
                    await self.approvals.on_unknown_sender(event, mg, wiring, user_id)
                return DropReason.UNKNOWN_SENDER_REQUEST_APPROVAL
            await self._drop(event, DropReason.UNKNOWN_SENDER_STRICT, mg, user_id, ag)
            return DropReason.UNKNOWN_SENDER_STRICT
        if wiring.sender_scope == "known" and not can_access(membership, ag):
            if engaged:
                await self._drop(event, DropReason.SENDER_SCOPE, mg, user_id, ag)
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
        return await self._write(
            event, mg, wiring, mode, thread, user_id, trigger=1 if engaged else 0
        )

    def _session_mode(self, event: InboundEvent, mg: MessagingGroup, wiring: Wiring) -> str:
        if wiring.session_mode == SessionMode.AGENT_SHARED:
            return SessionMode.AGENT_SHARED
        if event.channel_type in self.threaded_channels and mg.is_group and event.thread_id:
            return SessionMode.PER_THREAD
        return wiring.session_mode

    async def _write(
        self,
        event: InboundEvent,
        mg: MessagingGroup,
        wiring: Wiring,
        mode: str,
        thread: str | None,
        user_id: str | None,
        *,
        trigger: int,
    ) -> Delivery:
        return await asyncio.to_thread(
            self._write_sync, event, mg, wiring, mode, thread, user_id, trigger
        )

    def _write_sync(
        self,
        event: InboundEvent,
        mg: MessagingGroup,
        wiring: Wiring,
        mode: str,
        thread: str | None,
        user_id: str | None,
        trigger: int,
    ) -> Delivery:
        msg = event.message
        session, layout = self.sessions.resolve(
            agent_group_id=wiring.agent_group_id,
            messaging_group_id=mg.id,
            thread_id=thread,
            mode=mode,
        )
        message_id = f"{msg.id}:{wiring.agent_group_id}"
        content: dict[str, object] = {
            "text": msg.text,
            "sender": msg.sender,
            "sender_id": user_id,
            "sender_name": msg.sender_name,
        }
        if msg.attachments:
            content["attachments"] = self._save_attachments(layout, message_id, event)
        (seq,) = self.sessions.store.insert_messages(
            layout,
            [
                InboundMessage(
                    id=message_id,
                    kind=msg.kind if msg.kind in ("chat", "task", "webhook") else "chat",
                    content=content,
                    channel_type=event.channel_type,
                    platform_id=event.platform_id,
                    thread_id=event.thread_id,
                    trigger=trigger,
                )
            ],
        )
        self.repo.touch_session(session.id)
        return Delivery(session.id, wiring.agent_group_id, message_id, seq, trigger)

    def _save_attachments(
        self, layout: SessionLayout, message_id: str, event: InboundEvent
    ) -> list[dict[str, str | None]]:
        saved: list[dict[str, str | None]] = []
        folder = _inbox_folder(message_id)
        for index, att in enumerate(event.message.attachments):
            name = att.name
            try:
                safe_name(name)
            except NanoclawError:
                name = f"attachment-{index}"
            entry: dict[str, str | None] = {"name": name, "mime": att.mime}
            if att.data is not None:
                # Through the session folder's descriptor, O_EXCL: never follows or overwrites.
                if not create_file(
                    layout.root, "inbox", safe_name(folder), name, data=att.data, make_dirs=True
                ):
                    log.info("attachment %s/%s already saved (a re-delivered event)", folder, name)
                entry["path"] = f"inbox/{folder}/{name}"
            elif att.url:
                entry["url"] = att.url
            saved.append(entry)
        return saved

    async def _drop(
        self,
        event: InboundEvent,
        reason: str,
        mg: MessagingGroup | None,
        user_id: str | None,
        agent_group_id: str | None = None,
    ) -> None:
        await asyncio.to_thread(
            self.repo.record_drop,
            channel_type=event.channel_type,
            platform_id=event.platform_id,
            reason=reason,
            user_id=user_id,
            sender_name=event.message.sender_name,
            messaging_group_id=mg.id if mg else None,
            agent_group_id=agent_group_id,
            text=event.message.text,
        )
