"""CardMemory: option values survive a restart, a damaged file is survivable, the map is bounded."""

from __future__ import annotations

from pathlib import Path

from nanoclaw.channels.base import Card, CardOption
from nanoclaw.channels.card_memory import MAX_REMEMBERED_CARDS, CardMemory

CARD = Card("q1", "Title", "Ship it?", (CardOption("Allow", "approve"), CardOption("No", "deny")))


def test_a_card_is_recalled_by_a_new_instance_with_its_values_and_selected_labels(
    tmp_path: Path,
) -> None:
    path = tmp_path / "channels" / "cards.json"
    CardMemory(path=path).remember("42", "100", CARD, {"approve": "✅ Allowed"})
    recalled = CardMemory(path=path).recall("42", "100")
    assert recalled is not None
    card, selected = recalled
    assert card == CARD
    assert selected == {"approve": "✅ Allowed", "deny": "No"}
    assert CardMemory(path=path).recall("42", "101") is None


def test_forget_is_persisted(tmp_path: Path) -> None:
    path = tmp_path / "cards.json"
    memory = CardMemory(path=path)
    memory.remember("42", "100", CARD, {})
    memory.forget("42", "100")
    assert CardMemory(path=path).recall("42", "100") is None


def test_a_damaged_file_starts_empty_and_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "cards.json"
    path.write_text("{not json", encoding="utf-8")
    memory = CardMemory(path=path)
    assert memory.recall("42", "100") is None
    memory.remember("42", "100", CARD, {})
    assert CardMemory(path=path).recall("42", "100") is not None


def test_only_the_newest_cards_are_kept(tmp_path: Path) -> None:
    memory = CardMemory(path=None)
    for n in range(MAX_REMEMBERED_CARDS + 5):
        memory.remember("42", str(n), CARD, {})
    assert memory.recall("42", "0") is None and memory.recall("42", "4") is None
    assert memory.recall("42", "5") is not None
    assert memory.recall("42", str(MAX_REMEMBERED_CARDS + 4)) is not None
