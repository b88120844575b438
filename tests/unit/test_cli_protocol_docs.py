"""docs/cli-protocol.md and its JSON schema say what the frame models say."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from nanoclaw.channels.cli import frames
from nanoclaw.channels.cli.schema import render

DOCS = Path(__file__).resolve().parents[2] / "docs"
MODELS: list[type[BaseModel]] = [
    frames.Hello,
    frames.Message,
    frames.Action,
    frames.Ack,
    frames.Ready,
    frames.Accepted,
    frames.Notice,
    frames.Reply,
    frames.Typing,
    frames.Done,
    frames.ActionResult,
    frames.Error,
]


def _documented_fields() -> dict[str, set[str]]:
    """``### `type` `` sections of the protocol doc and the fields in their tables."""
    sections: dict[str, set[str]] = {}
    current: str | None = None
    for line in (DOCS / "cli-protocol.md").read_text().splitlines():
        heading = re.fullmatch(r"### `([a-z_]+)`", line)
        if heading:
            current = heading.group(1)
            sections[current] = set()
        elif line.startswith("## "):
            current = None
        elif current is not None and (cell := re.match(r"\| `([a-z_]+)` \|", line)):
            sections[current].add(cell.group(1))
    return sections


def test_every_frame_is_documented_with_exactly_its_fields() -> None:
    documented = _documented_fields()
    for model in MODELS:
        kind = model.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]
        assert kind in documented, f"frame {kind!r} is not documented"
        assert documented[kind] == set(model.model_fields) - {"type"}, kind
    assert len(documented) == len(MODELS)


def test_the_published_schema_is_generated_from_the_models() -> None:
    published = (DOCS / "cli-protocol.schema.json").read_text()
    assert published == render(), "regenerate: python -m nanoclaw.channels.cli.schema"
