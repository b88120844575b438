"""The conversation, kept in the runner's own ``outbound.db`` so it survives a sandbox restart.

Rows are Messages API messages (``user`` / ``assistant``) grouped by turn; at most one
``summary`` row stands for every turn that compaction removed. A turn is written in one
transaction when it ends, so a crash mid-turn leaves no half turn (the batch is re-run).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_runner.db import write_outbound
from nanoclaw.contract.timeutil import now_iso


@dataclass(frozen=True)
class StoredMessage:
    id: int
    turn_id: str
    role: str
    content: Any  # str or a list of content blocks


@dataclass
class History:
    summary: str | None
    messages: list[StoredMessage] = field(default_factory=list)

    def turns(self) -> list[list[StoredMessage]]:
        grouped: list[list[StoredMessage]] = []
        for message in self.messages:
            if grouped and grouped[-1][0].turn_id == message.turn_id:
                grouped[-1].append(message)
            else:
                grouped.append([message])
        return grouped

    def api_messages(self) -> list[dict[str, Any]]:
        return [{"role": m.role, "content": m.content} for m in self.messages]


class Transcript:
    def __init__(self, *, outbound_path: Path) -> None:
        self.outbound_path = outbound_path

    def load(self) -> History:
        with write_outbound(self.outbound_path) as conn:
            rows = conn.execute(
                "SELECT id, turn_id, role, content FROM transcript ORDER BY id"
            ).fetchall()
        summary: str | None = None
        messages: list[StoredMessage] = []
        for row_id, turn_id, role, content in rows:
            value = json.loads(content)
            if role == "summary":
                summary = str(value)
            else:
                messages.append(StoredMessage(row_id, turn_id, role, value))
        return History(summary=summary, messages=messages)

    def append_turn(self, turn_id: str, messages: Sequence[dict[str, Any]]) -> None:
        stamp = now_iso()
        with write_outbound(self.outbound_path) as conn:
            conn.executemany(
                "INSERT INTO transcript (turn_id, role, content, created_at) VALUES (?, ?, ?, ?)",
                [(turn_id, m["role"], json.dumps(m["content"]), stamp) for m in messages],
            )

    def compact(self, summary: str, *, keep_from_id: int | None) -> None:
        """Replace the old summary and every message before ``keep_from_id`` (None = all)."""
        with write_outbound(self.outbound_path) as conn:
            conn.execute("DELETE FROM transcript WHERE role = 'summary'")
            if keep_from_id is None:
                conn.execute("DELETE FROM transcript")
            else:
                conn.execute("DELETE FROM transcript WHERE id < ?", (keep_from_id,))
            conn.execute(
                "INSERT INTO transcript (turn_id, role, content, created_at)"
                " VALUES ('summary', 'summary', ?, ?)",
                (json.dumps(summary), now_iso()),
            )

    def clear(self) -> None:
        with write_outbound(self.outbound_path) as conn:
            conn.execute("DELETE FROM transcript")
