"""The channels' entry point: a pairing code is consumed, anything else is routed, and each
woken session shows "working…" on the chat until its turn is delivered.

Nothing accepted is lost here: text that is not valid Unicode is repaired first (the backstop
for adapters, ``nanoclaw.channels.text``); a routing failure is the router's to report
(``nanoclaw.routing.unhandled``)."""

from __future__ import annotations

import logging

from nanoclaw.channels.base import InboundEvent, RouteReceipt
from nanoclaw.channels.pairing import Pairer, PairingCodes
from nanoclaw.channels.registry import ChannelRegistry
from nanoclaw.channels.text import clean_event
from nanoclaw.channels.typing import TypingKeeper
from nanoclaw.contract.fault_log import FaultLog
from nanoclaw.db.repository import Repository
from nanoclaw.executors import Executors
from nanoclaw.routing.router import Router

log = logging.getLogger("nanoclaw.routing.inbound")


class TypedRoute:
    """Routes an event and starts the typing indicator of every session it woke."""

    def __init__(
        self,
        *,
        router: Router,
        channels: ChannelRegistry,
        typing: TypingKeeper,
    ) -> None:
        self.router = router
        self.channels = channels
        self.typing = typing

    async def route(self, event: InboundEvent) -> RouteReceipt:
        outcome = await self.router.route(event)
        adapter = self.channels.get(event.channel_type)
        if adapter is not None:  # "working…" on the chat until the woken turn is delivered
            waiting: dict[str, list[str]] = {}
            for d in outcome.deliveries:
                if d.trigger:
                    waiting.setdefault(d.session_id, []).append(d.message_id)
            for session_id, ids in waiting.items():
                self.typing.start(session_id, adapter, event.platform_id, event.thread_id, ids)
        return outcome.receipt()


class InboundHandler:
    """``ChannelSetup.on_inbound`` of every adapter."""

    def __init__(
        self,
        *,
        executors: Executors,
        route: TypedRoute,
        codes: PairingCodes,
        repo: Repository,
        local_channel_type: str,
    ) -> None:
        self.executors = executors
        self.route = route
        # The local CLI is trusted already; pairing codes are for remote chats.
        self.local_channel_type = local_channel_type
        self.pairer = Pairer(executors=executors, codes=codes, repo=repo, route=route.route)
        self.faults = FaultLog(log)

    async def on_inbound(self, event: InboundEvent) -> RouteReceipt:
        # The backstop for adapters: text that is not valid Unicode never goes further.
        event, replaced = clean_event(event)
        if replaced:
            self.faults.report(("lone-surrogates", event.channel_type), logging.WARNING,
                               "a %s message carried lone surrogates; replaced with U+FFFD",
                               event.channel_type)  # fmt: skip
        if event.channel_type != self.local_channel_type and await self.pairer.try_pair(event):
            return RouteReceipt(0, (), consumed=True)
        return await self.route.route(event)
