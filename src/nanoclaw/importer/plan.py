"""The plan an import shows before it changes anything: what it creates, reuses, skips, and needs from the user."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class Action(enum.StrEnum):
    CREATE = "create"
    REUSE = "reuse"
    SKIP = "skip"
    NEEDS_USER = "needs you"


@dataclass(frozen=True)
class PlanItem:
    what: str  # agent, chat, wiring, user, role, destination, task, folder, env, owner
    key: str
    action: Action
    detail: str = ""


@dataclass
class Plan:
    items: list[PlanItem] = field(default_factory=list)

    def add(self, what: str, key: str, action: Action, detail: str = "") -> None:
        self.items.append(PlanItem(what, key, action, detail))

    def count(self, action: Action) -> int:
        return sum(1 for i in self.items if i.action is action)

    def as_dicts(self) -> list[dict[str, Any]]:
        return [{**asdict(i), "action": i.action.value} for i in self.items]

    def as_text(self) -> str:
        lines: list[str] = []
        for action in Action:
            chosen = [i for i in self.items if i.action is action]
            if not chosen:
                continue
            lines.append(f"{action.value} ({len(chosen)}):")
            for item in chosen:
                extra = f" — {item.detail}" if item.detail else ""
                lines.append(f"  {item.what:<11} {item.key}{extra}")
        return "\n".join(lines) or "nothing to import"
