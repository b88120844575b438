"""The live adapters by channel type."""

from __future__ import annotations

from nanoclaw.channels.base import ChannelAdapter


class ChannelRegistry:
    def __init__(self) -> None:
        self._adapters: dict[str, ChannelAdapter] = {}

    def add(self, adapter: ChannelAdapter) -> None:
        self._adapters[adapter.channel_type] = adapter

    def get(self, channel_type: str) -> ChannelAdapter | None:
        return self._adapters.get(channel_type)

    def all(self) -> list[ChannelAdapter]:
        return list(self._adapters.values())

    def threaded(self) -> frozenset[str]:
        return frozenset(a.channel_type for a in self._adapters.values() if a.supports_threads)
