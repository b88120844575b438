"""Stuck-runner detection as a pure function (upstream §7, step 3).

A runner is killed when either
- **ceiling**: its heartbeat exists and is older than ``max(ceiling_s, tool_timeout)``, or
- **claim**: a ``processing`` claim is older than ``max(claim_tolerance_s, tool_timeout)``
  and the heartbeat shows no sign of life since the claim was taken.

``tool_timeout`` is the timeout the runner declared for the tool it is running now
(``runner_state.current_tool`` / ``tool_declared_timeout_ms``): a declared long tool widens
both thresholds. A missing heartbeat file (``heartbeat_mtime`` None or 0) skips the ceiling
check: the host deletes it before every start, so "missing" means "not started yet".
Claim times are parsed as UTC even without a zone suffix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from nanoclaw.contract.timeutil import parse_iso
from nanoclaw.sessions.outbound_reader import RunnerState

DEFAULT_CLAIM_TOLERANCE_S = 60.0
DEFAULT_HEARTBEAT_CEILING_S = 1800.0
# The runner touches the heartbeat around the moment it claims; a touch this close to the
# claim is part of taking it, not a sign of progress.
CLAIM_TOUCH_SLACK_S = 1.0


@dataclass(frozen=True)
class Claim:
    status: str  # 'processing' | 'completed' | 'failed'
    status_changed: str  # ISO-8601; a value without a zone is UTC


@dataclass(frozen=True)
class StuckDecision:
    action: Literal["ok", "kill"]
    reason: str = ""
    stuck_ids: tuple[str, ...] = ()


def declared_tool_timeout_s(state: RunnerState | None) -> float:
    """The timeout of the tool running now, if the runner declared one (else 0)."""
    if state is None or not state.current_tool or not state.tool_declared_timeout_ms:
        return 0.0
    return max(0.0, state.tool_declared_timeout_ms / 1000.0)


def decide_stuck_action(
    now: datetime,
    heartbeat_mtime: float | None,
    runner_state: RunnerState | None,
    claims: Mapping[str, Claim],
    *,
    claim_tolerance_s: float = DEFAULT_CLAIM_TOLERANCE_S,
    ceiling_s: float = DEFAULT_HEARTBEAT_CEILING_S,
) -> StuckDecision:
    """Whether a live runner must be killed. ``now`` is aware; mtimes are epoch seconds."""
    tool_s = declared_tool_timeout_s(runner_state)
    now_s = now.timestamp()
    processing = {mid: c for mid, c in claims.items() if c.status == "processing"}
    if heartbeat_mtime:
        age = now_s - heartbeat_mtime
        limit = max(ceiling_s, tool_s)
        if age > limit:
            return StuckDecision(
                "kill",
                f"no heartbeat for {age:.0f} s (limit {limit:.0f} s)",
                tuple(sorted(processing)),
            )
    tolerance = max(claim_tolerance_s, tool_s)
    stuck: list[str] = []
    for mid, claim in processing.items():
        try:
            claimed_at = parse_iso(claim.status_changed).timestamp()
        except ValueError:
            continue
        if now_s - claimed_at <= tolerance:
            continue
        alive_since_claim = (
            bool(heartbeat_mtime) and (heartbeat_mtime or 0.0) > claimed_at + CLAIM_TOUCH_SLACK_S
        )
        if not alive_since_claim:
            stuck.append(mid)
    if stuck:
        return StuckDecision(
            "kill",
            f"{len(stuck)} claim(s) older than {tolerance:.0f} s with no heartbeat since",
            tuple(sorted(processing)),
        )
    return StuckDecision("ok")
