"""The channel registry: light specs, lazily imported adapters, connect with retry, state.

A channel is a sub-package whose ``__init__`` exposes a ``SPEC`` (no platform imports);
its runtime class is imported only when its credentials are present. An adapter whose
setup fails is retried after 2, 5, 10, 10 … s in the background and never stops the host.
The state of each channel is written to ``data/channels.json`` for ``nanoclaw status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nanoclaw.channels.base import ChannelAdapter, ChannelSetup, OutboundPayload
from nanoclaw.contract.timeutil import now_iso
from nanoclaw.errors import ConfigError
from nanoclaw.executors import BlockingExecutor
from nanoclaw.settings import Settings

log = logging.getLogger("nanoclaw.channels")

BUILTIN_CHANNELS = (
    "nanoclaw.channels.slack",
    "nanoclaw.channels.telegram",
    "nanoclaw.channels.whatsapp",
    "nanoclaw.channels.discord",
)
STATE_FILE = "channels.json"
HEALTH_INTERVAL_S = 1.0  # how often a connected adapter's link state is re-read


@dataclass(frozen=True)
class ChannelSpec:
    """What the host knows of a channel before importing it."""

    name: str
    runtime: (
        str  # "package.module:AdapterClass"; the class has ``from_settings(settings, *, blocking)``
    )
    enabled_by: Callable[[Settings], list[str]]  # the missing credentials' env names ([] = enabled)
    threaded: bool = False

    def load(self) -> type[ChannelAdapter]:
        module_name, _, attr = self.runtime.partition(":")
        cls = getattr(importlib.import_module(module_name), attr)
        if not (isinstance(cls, type) and issubclass(cls, ChannelAdapter)):
            raise ConfigError(f"channel {self.name}: {self.runtime} is not a ChannelAdapter")
        return cls


def builtin_specs() -> list[ChannelSpec]:
    return [importlib.import_module(m).SPEC for m in BUILTIN_CHANNELS]


@dataclass
class ChannelState:
    name: str
    state: str  # skipped | connecting | connected | retrying | failed | stopped, or a LinkState
    detail: str = ""
    attempts: int = 0
    since: str = ""


def build_adapters(
    settings: Settings,
    specs: Sequence[ChannelSpec] | None = None,
    *,
    blocking: BlockingExecutor,
) -> tuple[list[ChannelAdapter], list[ChannelState]]:
    """Adapters for every spec whose credentials are set; the others are skipped with a log line."""
    adapters: list[ChannelAdapter] = []
    states: list[ChannelState] = []
    for spec in builtin_specs() if specs is None else specs:
        missing = spec.enabled_by(settings)
        if missing:
            log.info("channel %s skipped: no credentials (set %s)", spec.name, ", ".join(missing))
            states.append(
                ChannelState(spec.name, "skipped", f"missing {', '.join(missing)}", 0, now_iso())
            )
            continue
        try:
            adapter = spec.load().from_settings(settings, blocking=blocking)  # type: ignore[attr-defined]
        except Exception as exc:
            log.error("channel %s could not be built: %s", spec.name, exc)
            states.append(ChannelState(spec.name, "failed", str(exc), 0, now_iso()))
            continue
        adapters.append(adapter)
    return adapters, states


class ChannelRegistry:
    """The live adapters by channel type, and the state of every known channel."""

    def __init__(
        self,
        *,
        state_path: Path | None = None,
        retry_delays_s: Sequence[float] = (2.0, 5.0, 10.0),
        health_interval_s: float = HEALTH_INTERVAL_S,
    ) -> None:
        self.health_interval_s = health_interval_s
        self._adapters: dict[str, ChannelAdapter] = {}
        self._states: dict[str, ChannelState] = {}
        self.state_path = state_path
        self.retry_delays_s = tuple(retry_delays_s) or (10.0,)

    def add(self, adapter: ChannelAdapter) -> None:
        self._adapters[adapter.channel_type] = adapter

    async def notify(
        self,
        channel_type: str | None,
        platform_id: str | None,
        thread_id: str | None,
        text: str,
        failure: str | None = None,
    ) -> bool:
        """Send a host notice (a denial, a failure, a budget stop) straight through the adapter.

        Never raises: a notice that cannot be sent is logged, and the caller goes on.
        """
        if not channel_type or not platform_id:
            return False
        adapter = self.get(channel_type)
        if adapter is None:
            log.warning("no %s adapter to send a notice to %s", channel_type, platform_id)
            return False
        try:
            await adapter.deliver(
                platform_id,
                thread_id,
                OutboundPayload(
                    kind="chat", content={"text": text, **({"failure": failure} if failure else {})}
                ),
            )
        except Exception:
            log.exception("notice to %s/%s failed", channel_type, platform_id)
            return False
        return True

    def get(self, channel_type: str) -> ChannelAdapter | None:
        return self._adapters.get(channel_type)

    def all(self) -> list[ChannelAdapter]:
        return list(self._adapters.values())

    def threaded(self) -> frozenset[str]:
        return frozenset(a.channel_type for a in self._adapters.values() if a.supports_threads)

    # -- state ----------------------------------------------------------------------------------
    def note(self, state: ChannelState) -> None:
        self._states[state.name] = state
        self._write_states()

    def states(self) -> list[ChannelState]:
        return sorted(self._states.values(), key=lambda s: s.name)

    def _set(
        self, adapter: ChannelAdapter, state: str, detail: str = "", attempts: int = 0
    ) -> None:
        self.note(ChannelState(adapter.name, state, detail, attempts, now_iso()))

    def _write_states(self) -> None:
        if self.state_path is None:
            return
        data: dict[str, Any] = {
            "pid": os.getpid(),
            "updated": now_iso(),
            "channels": {s.name: vars(s) for s in self.states()},
        }
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=2))
            tmp.replace(self.state_path)
        except OSError as exc:
            log.warning("cannot write channel state to %s: %s", self.state_path, exc)

    # -- connecting -----------------------------------------------------------------------------
    async def connect(self, adapter: ChannelAdapter, setup: ChannelSetup) -> bool:
        """One setup attempt; True when the adapter is up. Never raises."""
        self._set(adapter, "connecting")
        try:
            await adapter.setup(setup)
        except Exception as exc:
            log.warning("channel %s failed to start: %s", adapter.name, _short(exc))
            self._set(adapter, "retrying", _short(exc), 1)
            return False
        self._set(adapter, "connected")
        return True

    async def keep_connecting(self, adapter: ChannelAdapter, setup: ChannelSetup) -> None:
        """Retry a failed setup after 2, 5, 10, 10 … s until it succeeds (a background task)."""
        attempt = 1
        while True:
            delay = self.retry_delays_s[min(attempt - 1, len(self.retry_delays_s) - 1)]
            await asyncio.sleep(delay)
            attempt += 1
            with contextlib.suppress(Exception):
                await adapter.teardown()  # release what a half-finished setup opened
            try:
                await adapter.setup(setup)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "channel %s failed to start (attempt %d): %s",
                    adapter.name,
                    attempt,
                    _short(exc),
                )
                self._set(adapter, "retrying", _short(exc), attempt)
                continue
            log.info("channel %s connected after %d attempts", adapter.name, attempt)
            self._set(adapter, "connected", "", attempt)
            return

    async def watch_health(self, adapter: ChannelAdapter) -> None:
        """Keep the adapter's real link state in the state file (a background task).

        A socket that dropped and keeps failing to reconnect shows ``reconnecting``, a
        Telegram token that another consumer polls shows ``conflict`` — never ``connected``.
        """
        known = self._states.get(adapter.name)
        attempts = known.attempts if known is not None else 0  # how many setups it took
        last = (known.state, "") if known is not None and known.state == "connected" else None
        while True:
            health = adapter.health()
            current = (str(health.state), health.detail)
            if current != last and not (last and last[0] == current[0] == "connected"):
                if last is not None:
                    log.info("channel %s is %s %s", adapter.name, current[0], current[1])
                self.note(ChannelState(adapter.name, current[0], current[1], attempts, now_iso()))
            last = current
            await asyncio.sleep(self.health_interval_s)

    async def teardown_all(self) -> None:
        for adapter in self.all():
            try:
                await adapter.teardown()
            except Exception:
                log.exception("channel %s teardown failed", adapter.name)
            self._set(adapter, "stopped")


def read_states(path: Path) -> dict[str, Any] | None:
    """The state file a running host wrote, or None."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 200 else text[:197] + "..."
