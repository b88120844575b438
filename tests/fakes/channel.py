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
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail_times > 0:
            self.fail_times -= 1
            raise DeliveryError("platform said no")
        self.sent.append(Sent(platform_id, thread_id, payload))
        return f"p{len(self.sent)}"
