"""The host's start-up circuit breaker: only a crash loop waits, and it says so.

As upstream: a start that follows unclean exits within the last hour waits
``0, 0, 10, 30, 120, 300, 900`` s (by how many there were); a clean stop, or a run that stayed up
for an hour, resets the count. The service manager (or the fallback supervisor) restarts the
host at once; this breaker is the one place that delays, so a user's ``nanoclaw start`` or
``restart`` skips the wait by leaving a one-shot marker the next start consumes.
State lives in ``data/startup-breaker.json``; the clock is injected so tests need no waiting.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("nanoclaw.service.breaker")

BREAKER_FILE = "startup-breaker.json"
SKIP_MARKER = "startup-breaker.skip"
CRASH_WINDOW_S = 3600.0
HEALTHY_RESET_S = 3600.0
DELAYS_S = (0.0, 0.0, 10.0, 30.0, 120.0, 300.0, 900.0)


@dataclass(frozen=True)
class BreakerDecision:
    crashes: int  # unclean exits within the window, this start's predecessor included
    delay_s: float
    skipped: bool  # a user start asked to skip the wait

    def describe(self) -> str:
        if self.delay_s <= 0:
            if self.skipped and self.crashes:
                return f"{self.crashes} crash(es) in the last hour; wait skipped by a user start"
            return f"{self.crashes} crash(es) in the last hour; starting at once"
        return (
            f"{self.crashes} crashes in the last hour: waiting {self.delay_s:g} s before starting "
            "(`nanoclaw restart` skips the wait)"
        )


class StartupBreaker:
    def __init__(self, *, data_path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = data_path / BREAKER_FILE
        self.skip_path = data_path / SKIP_MARKER
        self.clock = clock

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {"crashes": [], "running_since": None}
        if not isinstance(data, dict):
            return {"crashes": [], "running_since": None}
        data.setdefault("crashes", [])
        data.setdefault("running_since", None)
        return data

    def _save(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.path)

    def request_skip(self) -> None:
        """Called by ``nanoclaw start``/``restart``: the next start does not wait."""
        self.skip_path.parent.mkdir(parents=True, exist_ok=True)
        self.skip_path.touch()

    def on_start(self) -> BreakerDecision:
        """Record this start; how long to wait before starting the host."""
        now = self.clock()
        data = self._load()
        crashes = [float(t) for t in data["crashes"] if now - float(t) < CRASH_WINDOW_S]
        running_since = data.get("running_since")
        if running_since is not None:  # the last run never said it stopped: it crashed
            if now - float(running_since) >= HEALTHY_RESET_S:
                crashes = []  # it had been healthy for an hour: a fresh start
            crashes.append(now)
        skipped = self.skip_path.exists()
        with contextlib.suppress(OSError):
            self.skip_path.unlink()
        delay = 0.0 if skipped else DELAYS_S[min(len(crashes), len(DELAYS_S) - 1)]
        self._save({"crashes": crashes, "running_since": now + delay, "waiting_until": now + delay})
        decision = BreakerDecision(crashes=len(crashes), delay_s=delay, skipped=skipped)
        if crashes:
            log.warning("startup circuit breaker: %s", decision.describe())
        return decision

    def on_clean_stop(self) -> None:
        self._save({"crashes": [], "running_since": None})

    def status(self) -> dict[str, Any]:
        """For ``nanoclaw status``: recent crashes and any wait in progress."""
        now = self.clock()
        data = self._load()
        crashes = [float(t) for t in data["crashes"] if now - float(t) < CRASH_WINDOW_S]
        waiting_until = data.get("waiting_until")
        waiting_s = max(0.0, float(waiting_until) - now) if waiting_until else 0.0
        return {"crashes_last_hour": len(crashes), "waiting_s": round(waiting_s, 1)}
