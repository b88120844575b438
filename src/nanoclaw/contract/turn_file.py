"""``outbound/.turn``: the rows a runner's turn holds while its claim is not written yet.

A turn's claim (``processing_ack``) is written with the turn's first write to ``outbound.db``,
so a turn that ends quickly costs one commit, not two. Until that write a runner that dies
would leave no claim, and a message that kills its runner at once would be retried forever
without a try being counted. So the runner names its batch here before the turn starts: a
plain write, no fsync (the file only matters when the host sees a runner exit; after a host or
machine restart claims are released without a try anyway). When a runner exits, the host counts
one try for each id named here that is still pending and has no ack, as for a ``processing``
claim. A runner writes the file inside its sandbox by path; the host reads it beneath the
session folder's descriptor (DESIGN §2.6), bounded, and a file it cannot parse names nothing.
Stdlib only: the runner image ships this package.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

TURN_FILE = ".turn"  # beside outbound.db, in the folder only the runner writes
MAX_TURN_FILE_BYTES = 64 * 1024
MAX_ID_CHARS = 512


class TurnFileError(ValueError):
    """The file is not a JSON list of message ids."""


def write_turn(outbound_dir: Path, ids: Sequence[str]) -> None:
    """Name the rows of the turn about to run (the runner, in its own sandbox)."""
    (outbound_dir / TURN_FILE).write_text(json.dumps(list(ids)), encoding="utf-8")


def parse_turn(data: bytes) -> tuple[str, ...]:
    """The ids a turn file names; :class:`TurnFileError` for anything else."""
    try:
        ids = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TurnFileError(f"not JSON: {exc}") from None
    if not isinstance(ids, list) or not all(
        isinstance(i, str) and 0 < len(i) <= MAX_ID_CHARS for i in ids
    ):
        raise TurnFileError("not a list of message ids")
    return tuple(ids)
