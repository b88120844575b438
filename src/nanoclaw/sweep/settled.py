"""The sweep's settled sessions kept across restarts, so start-up does not open every session DB.

A session is *settled* after a visit that found no runner alive, no claim and no due work; the
sweep records the change signatures (inode, change counter) both its DBs had before that visit,
its next due time, and whether every reply then had its delivery record (a restart drains only
the sessions where that is not known). Every committed write bumps a file's change counter, so equal signatures
mean neither DB was written since. The record is a cache the host alone writes (in the data
directory, never mounted into a sandbox): a missing, unreadable or foreign file reads as empty,
and every session is visited. Written atomically (a temporary file, then a rename).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("nanoclaw.sweep.settled")

FORMAT_VERSION = 1
SETTLED_RECORD_NAME = "sweep-settled.json"  # in the data directory

Signature = tuple[int, int] | None


@dataclass(frozen=True)
class Settled:
    """One settled session: both DBs' signatures before its visit, and its next due time."""

    inbound: Signature
    outbound: Signature
    next_due: str | None  # UTC ISO-8601, None when nothing is due later
    delivered: bool = False  # every reply had its delivery record after the visit

    @property
    def signatures(self) -> tuple[Signature, Signature]:
        return (self.inbound, self.outbound)


def _signature(raw: Any) -> Signature:
    if raw is None:
        return None
    inode, counter = raw
    return (int(inode), int(counter))


class SettledStore:
    """Loads and saves the settled record at ``path``."""

    def __init__(self, *, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Settled]:
        try:
            document = json.loads(self.path.read_text())
            if document.get("version") != FORMAT_VERSION:
                return {}
            return {
                session_id: Settled(
                    inbound=_signature(entry["inbound"]),
                    outbound=_signature(entry["outbound"]),
                    next_due=None if entry["next_due"] is None else str(entry["next_due"]),
                    delivered=entry.get("delivered", False) is True,
                )
                for session_id, entry in document["sessions"].items()
            }
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("ignoring the sweep's settled record %s: %s", self.path, exc)
            return {}

    def save(self, settled: dict[str, Settled]) -> None:
        document = {
            "version": FORMAT_VERSION,
            "sessions": {
                session_id: {
                    "inbound": entry.inbound,
                    "outbound": entry.outbound,
                    "next_due": entry.next_due,
                    "delivered": entry.delivered,
                }
                for session_id, entry in settled.items()
            },
        }
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(document))
        temporary.replace(self.path)
