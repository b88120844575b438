"""Restarting an agent's runners: stop after the current turn, start again with an ``on_wake`` note.

For each session whose runner is running, the host writes a ``stop_runner`` control row
(the runner stops between turns; see ``agent_runner/poll.py``) and, when there is a note, a
chat row from ``system`` with ``on_wake=1``: only a fresh runner's first poll takes it, and
the runner formats it first. The pending note is what re-wakes the session when the old
runner exits (``Sweep.on_runner_exit``); without a note the session stays down until its
next message, as upstream. New configuration (mounts, destinations) applies at that start.
"""

from __future__ import annotations

from nanoclaw.contract.control import STOP_RUNNER_TYPE
from nanoclaw.db.models import SessionRow
from nanoclaw.ids import new_id
from nanoclaw.sessions.service import SessionService
from nanoclaw.sessions.store import InboundMessage


def request_restart(
    sessions: SessionService, session: SessionRow, *, note: str | None, requested_by: str
) -> None:
    rows = [
        InboundMessage(
            id=new_id("restart"),
            kind="system",
            content={"type": STOP_RUNNER_TYPE, "requested_by": requested_by},
            trigger=0,
        )
    ]
    if note:
        rows.append(
            InboundMessage(
                id=new_id("onwake"),
                kind="chat",
                content={"text": note, "sender": "system"},
                channel_type="agent",
                platform_id=session.agent_group_id,
                trigger=1,
                on_wake=1,
            )
        )
    sessions.store.insert_messages(sessions.layout(session), rows)
