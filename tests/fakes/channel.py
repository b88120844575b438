"""A fake channel adapter that records deliveries and can fail or stall on demand."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from nanoclaw.channels.base import ChannelAdapter, ChannelSetup, OutboundPayload
from nanoclaw.errors import DeliveryError


@dataclass
class Sent:
    platform_id: str
    thread_id: str | None
    payload: OutboundPayload


@dataclass
class FakeAdapter(ChannelAdapter):
    channel_type: str = "fake"
    name: str = "fake"
    fail_times: int = 0
    delay_s: float = 0.0
    sent: list[Sent] = field(default_factory=list)
    attempts: int = 0
    setup_calls: int = 0
    stalled: set[str] = field(default_factory=set)  # chats whose sends hang until released
    in_flight: list[str] = field(default_factory=list)  # texts of sends now hanging
    _released: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        """Let every hanging send finish (and later ones to stalled chats go through)."""
        self.stalled.clear()
        self._released.set()

    async def setup(self, setup: ChannelSetup) -> None:
        self.setup_calls += 1
        self.on_inbound = setup.on_inbound

    async def teardown(self) -> None:
        return None

    def is_connected(self) -> bool:
        return True

    async def deliver(
        self, platform_id: str, thread_id: str | None, payload: OutboundPayload
    ) -> str | None:
        self.attempts += 1
        if platform_id in self.stalled:  # a platform that accepts the request and never answers
            self.in_flight.append(payload.text)
            try:
                await self._released.wait()
            finally:
                self.in_flight.remove(payload.text)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail_times > 0:
            self.fail_times -= 1
            raise DeliveryError("platform said no")
        self.sent.append(Sent(platform_id, thread_id, payload))
        return f"p{len(self.sent)}"
