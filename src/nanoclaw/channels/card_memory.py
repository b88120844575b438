"""Sent cards remembered on disk, so a button clicked after a host restart keeps its value.

Telegram's callback data holds only ``ncq:<question id>:<index>`` (64 bytes), so the option's
value lives here, keyed by the card's chat and message id. The file is rewritten atomically;
it keeps the newest ``MAX_REMEMBERED_CARDS`` cards, far more than can be open at once.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from nanoclaw.channels.base import Card, OutboundPayload
from nanoclaw.channels.cards import card_of

log = logging.getLogger("nanoclaw.channels.card_memory")

MAX_REMEMBERED_CARDS = 1000


class CardMemory:
    """(chat, message id) → (card, selected labels); in memory only when ``path`` is None."""

    def __init__(self, *, path: Path | None) -> None:
        self.path = path
        self._cards: dict[str, dict[str, Any]] = self._load()

    def remember(self, chat_id: str, message_id: str, card: Card, selected: dict[str, str]) -> None:
        raw = card.to_dict()
        for option in raw["options"]:
            option["selectedLabel"] = selected.get(option["value"], option["label"])
        self._cards.pop(_key(chat_id, message_id), None)
        self._cards[_key(chat_id, message_id)] = raw
        while len(self._cards) > MAX_REMEMBERED_CARDS:
            del self._cards[next(iter(self._cards))]  # dicts keep insertion order: oldest first
        self._save()

    def recall(self, chat_id: str, message_id: str) -> tuple[Card, dict[str, str]] | None:
        raw = self._cards.get(_key(chat_id, message_id))
        if raw is None:
            return None
        return card_of(OutboundPayload(kind="card", content={"card": raw}))

    def forget(self, chat_id: str, message_id: str) -> None:
        if self._cards.pop(_key(chat_id, message_id), None) is not None:
            self._save()

    def _load(self) -> dict[str, dict[str, Any]]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            # Losing the map only degrades old buttons to their labels; never stop the channel.
            log.warning("card memory %s unreadable (%s); starting empty", self.path, exc)
            return {}
        if not isinstance(loaded, dict):
            return {}
        return {str(k): v for k, v in loaded.items() if isinstance(v, dict)}

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._cards), encoding="utf-8")
        tmp.replace(self.path)


def _key(chat_id: str, message_id: str) -> str:
    return f"{chat_id}:{message_id}"
