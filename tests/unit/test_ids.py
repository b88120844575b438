"""New ids: the documented shape, time-ordered prefix, and a suffix spread over the alphabet."""

from __future__ import annotations

import re
from collections import Counter

from nanoclaw.ids import new_id


def test_shape_and_uniqueness() -> None:
    ids = [new_id("msg") for _ in range(5000)]
    assert all(re.fullmatch(r"msg-\d{13}-[0-9a-z]{6}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_suffix_uses_every_character_in_every_position() -> None:
    suffixes = [new_id("x").rsplit("-", 1)[1] for _ in range(4000)]
    for position in range(6):
        counts = Counter(s[position] for s in suffixes)
        # 4000 draws over 36 characters: about 111 each; a character missing or drawn three
        # times too often would mean a biased or truncated encoding.
        assert len(counts) == 36
        assert max(counts.values()) < 3 * 4000 / 36
