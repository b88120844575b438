"""Typing / "working" indication while a session's turn runs (upstream §6 typing, peers row 9).

Started when the router wakes a session for a message, refreshed every ``TYPING_REFRESH_S``
(Telegram's chat action lasts about 5 s), stopped when that turn's replies are delivered,
when the runner exits, or after ``TYPING_MAX_S`` as a safety net.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from nanoclaw.cancel import cancel_and_wait
from nanoclaw.channels.base import ChannelAdapter

log = logging.getLogger("nanoclaw.channels.typing")

TYPING_REFRESH_S = 4.0
TYPING_MAX_S = 900.0


@dataclass
class _Indicator:
    adapter: ChannelAdapter
    platform_id: str
    thread_id: str | None
    waiting: set[str] = field(default_factory=set)
    task: asyncio.Task[None] | None = None


class TypingKeeper:
    def __init__(self, *, refresh_s: float = TYPING_REFRESH_S, max_s: float = TYPING_MAX_S) -> None:
        self.refresh_s = refresh_s
        self.max_s = max_s
        self._by_session: dict[str, _Indicator] = {}

    def start(
        self,
        session_id: str,
        adapter: ChannelAdapter,
        platform_id: str,
        thread_id: str | None,
        message_ids: Iterable[str],
    ) -> None:
        ind = self._by_session.get(session_id)
        if ind is None:
            ind = _Indicator(adapter, platform_id, thread_id)
            self._by_session[session_id] = ind
        ind.waiting |= set(message_ids)
        if ind.task is None or ind.task.done():
            ind.task = asyncio.ensure_future(self._keep(ind))
            ind.task.set_name(f"typing-{session_id}")

    async def done(self, session_id: str, message_ids: Iterable[str]) -> None:
        ind = self._by_session.get(session_id)
        if ind is None:
            return
        ind.waiting -= set(message_ids)
        if not ind.waiting:
            await self.stop(session_id)

    async def stop(self, session_id: str) -> None:
        ind = self._by_session.pop(session_id, None)
        if ind is None:
            return
        if ind.task is not None:
            await cancel_and_wait(ind.task)  # never swallows our own cancellation
        await self._set(ind, False)

    async def stop_all(self) -> None:
        for session_id in list(self._by_session):
            await self.stop(session_id)

    def active(self) -> set[str]:
        return set(self._by_session)

    async def _keep(self, ind: _Indicator) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_s
        while loop.time() < deadline:
            await self._set(ind, True)
            await asyncio.sleep(self.refresh_s)
        await self._set(ind, False)

    @staticmethod
    async def _set(ind: _Indicator, on: bool) -> None:
        try:
            await ind.adapter.set_typing(ind.platform_id, ind.thread_id, on)
        except Exception as exc:  # typing is cosmetic: never let it break a turn
            log.debug("typing on %s/%s failed: %s", ind.adapter.name, ind.platform_id, exc)
