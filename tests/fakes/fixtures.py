"""Platform payloads for the fakes, read from ``tests/fixtures/<channel>/<name>.json``.

Each fixture file names the documentation section it follows (``_doc``) and holds the
payload under ``payload``. Fakes take a deep copy and substitute only ids and text.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@functools.cache
def _read(channel: str, name: str) -> dict[str, Any]:
    data = json.loads((FIXTURES / channel / f"{name}.json").read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "_doc" not in data or "payload" not in data:
        raise ValueError(f"fixture {channel}/{name} has no _doc or payload")
    return data


def fixture(channel: str, name: str) -> Any:
    """A fresh copy of one fixture's payload."""
    return copy.deepcopy(_read(channel, name)["payload"])


def names(channel: str) -> list[str]:
    return sorted(p.stem for p in (FIXTURES / channel).glob("*.json"))
