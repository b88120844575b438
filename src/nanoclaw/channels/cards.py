"""Card payloads as adapters see them, and button data that fits Telegram's 64-byte limit."""

from __future__ import annotations

from typing import Any

from nanoclaw.channels.base import Card, CardOption, OutboundPayload

CARD_BUTTON_PREFIX = "ncq"
CALLBACK_DATA_MAX_BYTES = 64


class Refusal(str):
    """A click handler's reply that leaves the card open (e.g. the clicker may not answer).

    Adapters show it privately to the clicker and keep the buttons for the right person.
    """

    __slots__ = ()


def card_of(payload: OutboundPayload) -> tuple[Card, dict[str, str]] | None:
    """The card in a payload (``kind="card"`` or upstream ``ask_question``) + selected labels."""
    content = payload.content
    raw: dict[str, Any] | None = None
    if payload.kind == "card" and isinstance(content.get("card"), dict):
        raw = dict(content["card"])
        raw.setdefault("questionId", raw.get("question_id"))
    elif content.get("type") == "ask_question":
        raw = content
    if raw is None or not raw.get("questionId"):
        return None
    options: list[CardOption] = []
    selected: dict[str, str] = {}
    for item in raw.get("options") or []:
        if isinstance(item, dict):
            label = str(item.get("label") or item.get("value") or "")
            value = str(item.get("value") or label)
            selected[value] = str(item.get("selectedLabel") or label)
        else:
            label = value = str(item)
        options.append(CardOption(label=label, value=value))
    card = Card(
        question_id=str(raw["questionId"]),
        title=str(raw.get("title") or ""),
        question=str(raw.get("question") or ""),
        options=tuple(options),
    )
    return card, selected


def button_data(card: Card, index: int) -> str:
    return f"{CARD_BUTTON_PREFIX}:{card.question_id}:{index}"


def fits_callback_data(card: Card) -> bool:
    return len(button_data(card, len(card.options)).encode()) <= CALLBACK_DATA_MAX_BYTES


def parse_button_data(data: str) -> tuple[str, int] | None:
    """``ncq:<question id>:<index>`` → (question id, index); anything else → None."""
    prefix, _, rest = data.partition(":")
    question_id, _, index = rest.rpartition(":")
    if prefix != CARD_BUTTON_PREFIX or not question_id or not index.isdigit():
        return None
    return question_id, int(index)


def answered_text(card: Card, label: str, confirmation: str | None) -> str:
    """What a clicked card becomes: its title, the chosen label, and the host's confirmation."""
    parts = [p for p in (card.title, label, confirmation) if p]
    return "\n\n".join(parts)
