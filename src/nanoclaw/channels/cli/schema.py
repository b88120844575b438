"""Print the CLI protocol's JSON schema (``python -m nanoclaw.channels.cli.schema``), as in docs/."""

from __future__ import annotations

import json

from nanoclaw.channels.cli.frames import json_schema


def render() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(), end="")
