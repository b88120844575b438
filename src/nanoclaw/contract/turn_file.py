"""``outbound/.turn``: the rows a runner's turn holds while its claim is not written yet.

A turn's claim (``processing_ack``) is written with the turn's first write to ``outbound.db``,
so a turn that ends quickly costs one commit, not two. Until that write a runner that dies
would leave no claim, and a message that kills its runner at once would be retried forever
without a try being counted. So the runner names its batch here before the turn starts: a
fresh temporary file renamed over this one (never through a planted link or FIFO), no fsync
(after a host or machine restart claims are released without a try anyway). The host reads it
when a runner exits, counting one try for each id named here that is still pending and has no
ack, as for a ``processing`` claim, and in the sweep, judging a live runner's unwritten claim
as one taken at the file's time. It reads beneath the session folder's descriptor (DESIGN
§2.6), bounded; a file it cannot read or parse names nothing. The host removes the file
wherever it releases claims (``SessionStore.clear_orphan_claims``: before every start too).
Stdlib only: the runner image ships this package.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

TURN_FILE = ".turn"  # beside outbound.db, in the folder only the runner writes
MAX_TURN_FILE_BYTES = 64 * 1024
MAX_ID_CHARS = 512


class TurnFileError(ValueError):
    """The file is not a JSON list of message ids."""


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def write_turn(outbound_dir: Path, ids: Sequence[str]) -> None:
    """Name the rows of the turn about to run (the runner, in its own sandbox).

    Written under a temporary name and renamed over the file inside the folder's descriptor:
    ``rename`` replaces whatever entry an agent planted there and follows none. ``OSError``
    when it cannot (a directory planted under the name, say).
    """
    data = json.dumps(list(ids)).encode("utf-8")
    tmp = f"{TURN_FILE}.{os.getpid()}.tmp"
    folder = os.open(outbound_dir, _DIR_FLAGS)
    try:
        try:
            os.unlink(tmp, dir_fd=folder)  # left by a runner killed between its two steps
        except FileNotFoundError:
            pass
        fd = os.open(tmp, _TEMP_FLAGS, 0o644, dir_fd=folder)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.rename(tmp, TURN_FILE, src_dir_fd=folder, dst_dir_fd=folder)
    finally:
        os.close(folder)


def parse_turn(data: bytes) -> tuple[str, ...]:
    """The ids a turn file names; :class:`TurnFileError` for anything else."""
    try:
        ids = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, a huge number, deep nesting
        raise TurnFileError(f"not JSON: {type(exc).__name__}") from None
    if not isinstance(ids, list) or not all(
        isinstance(i, str) and 0 < len(i) <= MAX_ID_CHARS for i in ids
    ):
        raise TurnFileError("not a list of message ids")
    return tuple(ids)
