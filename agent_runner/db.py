"""The runner's side of the session DBs.

Invariant 2: ``inbound.db`` is read through a fresh read-only connection with
``mmap_size=0`` on every poll (a cached reader can keep a stale view across a mount);
``outbound.db`` is written open-write-close with ``BEGIN IMMEDIATE``. The runner is the
only writer of ``outbound.db`` while it is alive (invariant 1).

A read-only reader that meets a hot journal (a host write interrupted mid-transaction)
cannot roll it back and gets ``SQLITE_READONLY_ROLLBACK``: that is a transient state the
host's next write repairs, so the reader retries with backoff for ``READ_RETRY_DEADLINE_S``
and then raises ``InboundUnreadableError``, which the poll loop treats as "nothing this poll".
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_runner.acks import PROCESSING, AckMirror
from nanoclaw.contract import sessiondb
from nanoclaw.contract.seq import next_runner_seq
from nanoclaw.contract.sessiondb import Destination, InboundRow, Routing, SessionFile, parse_content
from nanoclaw.contract.timeutil import now_iso
from nanoclaw.contract.turn_file import TURN_FILE, write_turn
from nanoclaw.errors import SchemaVersionError

log = logging.getLogger("agent_runner")

SchemaMismatchError = SchemaVersionError  # the session DBs are not at the announced versions
InboundUnreadableError = sessiondb.InboundUnreadableError  # a hot journal outlasted the retry

# The contract's helpers under the names the runner's modules use. The runner reads inbound.db
# through the contract's snapshot reader (read-only, one read transaction, hot-journal retry).
read_inbound = sessiondb.reading_snapshot
write_outbound = sessiondb.writing
_row = sessiondb.inbound_row
_COLUMNS = sessiondb.INBOUND_ROW_COLUMNS
_DESTINATIONS = (
    "SELECT name, display_name, type, channel_type, platform_id, agent_group_id"
    " FROM destinations ORDER BY name"
)
_ROUTING = "SELECT channel_type, platform_id, thread_id FROM session_routing WHERE id = 1"
_PARAMS_PER_STATEMENT = 500  # under SQLite's bound-parameter limit

Projection = tuple[list[Destination], Routing | None]  # the destinations and the session's routing


@dataclass(frozen=True)
class OutboundMessage:
    """A row for ``messages_out``; ``seq`` and ``id`` are assigned on write."""

    kind: str  # "chat" | "system"
    content: dict[str, Any]
    channel_type: str | None = None
    platform_id: str | None = None
    thread_id: str | None = None
    in_reply_to: str | None = None
    deliver_after: str | None = None
    id: str | None = None  # preset when files go to ``outbox/<id>/`` before the row is written


def new_out_id() -> str:
    return f"out-{uuid.uuid4().hex}"


@dataclass(frozen=True)
class PollView:
    """What one poll of ``inbound.db`` saw (one read snapshot)."""

    rows: list[InboundRow]  # pending, due and unclaimed, oldest first
    next_due_at: str | None  # when the earliest not-yet-due triggering row becomes due
    projection: Projection | None = None  # read when asked for and a row could drive a turn
    max_seq: int | None = None  # the highest messages_in seq (a turn's replies go above it)


@dataclass(frozen=True)
class UsageRecord:
    """One turn's tokens and cost, written with the turn's acks."""

    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float


class SessionDB:
    """Reads ``inbound.db`` and writes ``outbound.db`` of one session."""

    def __init__(self, *, inbound_path: Path, outbound_path: Path) -> None:
        self.inbound_path = inbound_path
        self.outbound_path = outbound_path
        # The copy of ``processing_ack`` (agent_runner.acks), read at first use: a poll skips
        # claimed rows without reading outbound.db.
        self._acks: AckMirror | None = None
        # Rows claimed for the running turn but not written yet (``claim_later``): the turn's
        # first write to outbound.db carries the claim, or ``write_claim`` writes it alone.
        self._unwritten_claim: tuple[str, ...] = ()
        self._turn: tuple[str, ...] = ()  # the ids ``outbound/.turn`` names
        self._writing = threading.RLock()  # see _turn_write

    # -- schema ---------------------------------------------------------------------------
    def check_schema(self, *, inbound: int, outbound: int) -> None:
        """Refuse to run on session DBs at other schema versions than the host announced."""
        sessiondb.expect_version(self.inbound_path, SessionFile.INBOUND, inbound)
        sessiondb.expect_version(self.outbound_path, SessionFile.OUTBOUND, outbound, writer=True)

    # -- inbound (read-only) -----------------------------------------------------------------
    def pending(self, *, now: str, include_on_wake: bool) -> list[InboundRow]:
        """Pending, due rows not claimed in ``processing_ack`` (any status), oldest first."""
        return self.poll(now=now, include_on_wake=include_on_wake).rows

    def poll(self, *, now: str, include_on_wake: bool, projection: bool = False) -> PollView:
        """One poll's view: the unclaimed pending due rows and the next due time, one snapshot.

        Claims come from the copy of ``processing_ack`` (read from outbound.db once), so a
        poll opens one DB and its cost does not grow with the session's history. The same
        snapshot tells which finished acks the host has folded in (the next claim prunes them)
        and, with ``projection`` and a triggering row, the destinations and routing a turn uses.
        """
        acks = self._mirror()
        to_check = acks.to_check()
        with read_inbound(self.inbound_path) as conn:
            values = conn.execute(
                f"SELECT {_COLUMNS} FROM messages_in WHERE status = 'pending'"
                " AND (process_after IS NULL OR process_after <= ?)"
                " AND (on_wake = 0 OR ?) ORDER BY seq",
                (now, 1 if include_on_wake else 0),
            ).fetchall()
            due = conn.execute(
                "SELECT MIN(process_after) FROM messages_in WHERE status = 'pending'"
                " AND trigger = 1 AND process_after > ?",
                (now,),
            ).fetchone()
            max_seq = conn.execute("SELECT MAX(seq) FROM messages_in").fetchone()[0]
            folded = _not_pending(conn, to_check)
            rows = [_row(v) for v in values if v[0] not in acks]  # content parsed for these only
            seen = _projection(conn) if projection and any(r.trigger for r in rows) else None
        acks.checked(to_check, folded)
        return PollView(
            rows=rows,
            next_due_at=due[0] if due and due[0] else None,
            projection=seen,
            max_seq=max_seq,
        )

    def next_due_at(self, *, now: str) -> str | None:
        """When the earliest pending triggering row that is not yet due becomes due."""
        with read_inbound(self.inbound_path) as conn:
            found = conn.execute(
                "SELECT MIN(process_after) FROM messages_in WHERE status = 'pending'"
                " AND trigger = 1 AND process_after > ?",
                (now,),
            ).fetchone()
        return found[0] if found and found[0] else None

    def row_by_seq(self, seq: int) -> InboundRow | None:
        with read_inbound(self.inbound_path) as conn:
            values = conn.execute(f"SELECT {_COLUMNS} FROM messages_in WHERE seq = ?", (seq,))
            found = values.fetchone()
        return _row(found) if found else None

    def row_by_id(self, row_id: str) -> InboundRow | None:
        with read_inbound(self.inbound_path) as conn:
            found = conn.execute(
                f"SELECT {_COLUMNS} FROM messages_in WHERE id = ?", (row_id,)
            ).fetchone()
        return _row(found) if found else None

    def pending_system(self) -> list[InboundRow]:
        """Pending ``system`` rows (tool responses, action results), oldest first."""
        with read_inbound(self.inbound_path) as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM messages_in WHERE status = 'pending' AND kind = 'system'"
                " ORDER BY seq"
            ).fetchall()
        return [_row(v) for v in rows]

    def delivered_platform_id(self, message_out_id: str) -> str | None:
        """The platform's id for one of our delivered rows (for edits and reactions)."""
        with read_inbound(self.inbound_path) as conn:
            found = conn.execute(
                "SELECT platform_message_id FROM delivered WHERE message_out_id = ?",
                (message_out_id,),
            ).fetchone()
        return found[0] if found else None

    def seq_of_platform_message(
        self, channel_type: str | None, platform_id: str | None, platform_message_id: str
    ) -> int | None:
        """The seq the agent knows a chat message by (a user's or its own), from its platform id."""
        with read_inbound(self.inbound_path) as conn:
            found = conn.execute(
                "SELECT seq FROM messages_in WHERE channel_type IS ? AND platform_id IS ?"
                " AND json_extract(content, '$.platform_message_id') = ? ORDER BY seq LIMIT 1",
                (channel_type, platform_id, platform_message_id),
            ).fetchone()
            if found is not None:
                return int(found[0])
            out_ids = [
                r[0]
                for r in conn.execute(
                    "SELECT message_out_id FROM delivered WHERE platform_message_id = ?",
                    (platform_message_id,),
                ).fetchall()
            ]
        if not out_ids:
            return None
        marks = ",".join("?" for _ in out_ids)
        with write_outbound(self.outbound_path) as conn:
            found = conn.execute(
                f"SELECT seq FROM messages_out WHERE id IN ({marks})"
                " AND channel_type IS ? AND platform_id IS ? ORDER BY seq LIMIT 1",
                (*out_ids, channel_type, platform_id),
            ).fetchone()
        return int(found[0]) if found is not None else None

    def outbound_by_seq(self, seq: int) -> dict[str, Any] | None:
        with write_outbound(self.outbound_path) as conn:
            found = conn.execute(
                "SELECT id, channel_type, platform_id, thread_id, content FROM messages_out"
                " WHERE seq = ?",
                (seq,),
            ).fetchone()
        if found is None:
            return None
        return {
            "id": found[0],
            "channel_type": found[1],
            "platform_id": found[2],
            "thread_id": found[3],
            "content": parse_content(found[4]),
        }

    def tasks(self) -> list[dict[str, Any]]:
        """Live task rows (pending or paused), oldest first."""
        with read_inbound(self.inbound_path) as conn:
            rows = conn.execute(
                "SELECT id, series_id, status, process_after, recurrence, content FROM messages_in"
                " WHERE kind = 'task' AND status IN ('pending', 'paused') ORDER BY process_after, seq"
            ).fetchall()
        return [
            {
                "id": r[0],
                "series_id": r[1] or r[0],
                "status": r[2],
                "process_after": r[3],
                "recurrence": r[4],
                "content": parse_content(r[5]),
            }
            for r in rows
        ]

    def latest_from(self, channel_type: str, platform_id: str) -> InboundRow | None:
        with read_inbound(self.inbound_path) as conn:
            found = conn.execute(
                f"SELECT {_COLUMNS} FROM messages_in WHERE channel_type = ? AND platform_id = ?"
                " ORDER BY seq DESC LIMIT 1",
                (channel_type, platform_id),
            ).fetchone()
        return _row(found) if found else None

    def projection(self) -> Projection:
        """The destinations and the session's routing, read in one snapshot."""
        with read_inbound(self.inbound_path) as conn:
            return _projection(conn)

    def destinations(self) -> list[Destination]:
        with read_inbound(self.inbound_path) as conn:
            rows = conn.execute(_DESTINATIONS).fetchall()
        return [Destination(*r) for r in rows]

    def routing(self) -> Routing | None:
        with read_inbound(self.inbound_path) as conn:
            found = conn.execute(_ROUTING).fetchone()
        return Routing(*found) if found else None

    # -- outbound (read-write, runner is the only writer) ---------------------------------------
    def _mirror(self) -> AckMirror:
        """The copy of ``processing_ack``; read from outbound.db the first time."""
        if self._acks is None:
            with read_inbound(self.outbound_path) as conn:
                self._acks = AckMirror(_read_acks(conn))
        return self._acks

    def _mirror_in(self, conn: sqlite3.Connection) -> AckMirror:
        """The copy, read inside a write transaction the first time (before it changes)."""
        if self._acks is None:
            self._acks = AckMirror(_read_acks(conn))
        return self._acks

    def claimed_ids(self) -> set[str]:
        with write_outbound(self.outbound_path) as conn:
            return {r[0] for r in conn.execute("SELECT message_id FROM processing_ack")}

    def clear_stale_claims(self) -> int:
        """At start-up: a ``processing`` claim left by a dead runner is released for retry."""
        with write_outbound(self.outbound_path) as conn:
            released = conn.execute("DELETE FROM processing_ack WHERE status = 'processing'")
            acks = _read_acks(conn)
        self._acks = AckMirror(acks)  # read afresh: whatever was before this runner is in it
        return released.rowcount

    def claim(self, ids: Sequence[str]) -> None:
        """Claim rows for a turn now, and prune finished acks the host has folded into inbound.db.

        An ack whose ``messages_in`` row is no longer pending has done its job (the row is
        never pending again), so ``processing_ack`` stays as small as the work in flight.
        The poll before the claim has looked at the finished acks in its snapshot; inbound.db
        is read here only when an ack was finished since.
        """
        self._unwritten_claim = tuple(ids)
        self.write_claim()

    def claim_later(self, ids: Sequence[str]) -> None:
        """Claim rows for the turn about to run, written with the turn's first write.

        That write is ``finish`` for a turn that ends first (one commit for the whole turn),
        else ``send``, ``set_state``, ``set_current_tool`` or ``write_claim``, which the poll
        loop calls once the turn has run ``CLAIM_WRITE_AFTER_S``. Until then the rows are
        still pending and unacked in the host's view, which reads that as busy, never idle.
        The batch is named in ``outbound/.turn`` first (nanoclaw.contract.turn_file), so a
        runner that dies before the claim is written still costs each row one try.
        """
        self._unwritten_claim = tuple(ids)
        if ids and not self._name_turn(tuple(ids)):
            self.write_claim()  # the turn cannot be named: claimed now, as before a turn

    def drop_unwritten_claim(self) -> None:
        """Forget a claim no write carried (its turn raised first): its rows stay pending."""
        self._unwritten_claim = ()

    def _name_turn(self, ids: tuple[str, ...]) -> bool:
        try:
            write_turn(self.outbound_path.parent, ids)
        except OSError as exc:  # something planted under the name that rename cannot replace
            log.warning("cannot name the turn in %s: %s", TURN_FILE, exc)
            return False
        self._turn = ids
        return True

    def write_claim(self) -> bool:
        """Write the turn's claim now, unless a write has carried it already."""
        if not self._unwritten_claim:
            return False
        with self._turn_write():
            pass
        return True

    @contextmanager
    def _turn_write(
        self, *, finishing: Sequence[str] = ()
    ) -> Iterator[tuple[sqlite3.Connection, AckMirror]]:
        """A write transaction on outbound.db that carries the turn's unwritten claim (and the
        prune that goes with a claim); ``finishing`` are ids whose final ack it writes itself."""
        # One at a time: the loop's claim timer must see a claim a tool's write (on a thread)
        # carried, or it would write ``processing`` over that write's final ack.
        with self._writing:
            with write_outbound(self.outbound_path) as conn:
                claimed = [i for i in self._unwritten_claim if i not in finishing]
                acks = self._mirror_in(conn)
                pruned: list[str] = []
                if self._unwritten_claim:
                    pruned = self._claim_in(conn, acks, claimed)
                yield conn, acks
            # Committed: only now does the copy change (agent_runner.acks).
            self._unwritten_claim = ()
            acks.drop(pruned)
            acks.set(claimed, PROCESSING)

    def _claim_in(self, conn: sqlite3.Connection, acks: AckMirror, ids: Sequence[str]) -> list[str]:
        if acks.unchecked():
            to_check = acks.to_check()  # a read is made anyway: every finished ack
            with read_inbound(self.inbound_path) as inbound:
                acks.checked(to_check, _not_pending(inbound, to_check))
        pruned = acks.prunable()
        if pruned:
            conn.executemany(
                "DELETE FROM processing_ack WHERE message_id = ? AND status != 'processing'",
                [(i,) for i in pruned],
            )
        stamp = now_iso()
        conn.executemany(
            "INSERT OR REPLACE INTO processing_ack (message_id, status, status_changed)"
            " VALUES (?, 'processing', ?)",
            [(i, stamp) for i in ids],
        )
        return pruned

    def release(self, ids: Sequence[str]) -> None:
        """Drop this runner's ``processing`` claims on rows it will not turn now (they stay pending)."""
        if any(i in ids for i in self._turn):
            self._name_turn(tuple(i for i in self._turn if i not in ids))  # no longer held
        unwritten = set(self._unwritten_claim)
        self._unwritten_claim = tuple(i for i in self._unwritten_claim if i not in ids)
        written = [i for i in ids if i not in unwritten]
        if not written:
            return
        with self._turn_write() as (conn, acks):
            conn.executemany(
                "DELETE FROM processing_ack WHERE message_id = ? AND status = 'processing'",
                [(i,) for i in written],
            )
        acks.drop([i for i in written if acks.status(i) == PROCESSING])

    def finish(
        self,
        ids: Sequence[str],
        messages: Sequence[OutboundMessage],
        *,
        status: str = "completed",
        usage: UsageRecord | None = None,
        inbound_seq: int | None = None,
    ) -> list[int]:
        """Write the replies, the usage and the final acks in one transaction (a crash loses none alone).

        The replies' seqs go above every ``messages_out`` row and above ``inbound_seq``, the
        highest ``messages_in`` seq of the poll the turn answers (None: inbound.db is read now).
        """
        with self._turn_write(finishing=ids) as (conn, acks):
            if messages and inbound_seq is None:
                inbound_seq = self._inbound_seq()
            seqs = [self._insert(conn, m, inbound_seq) for m in messages]
            if usage is not None:
                conn.execute(
                    "INSERT INTO usage (turn_id, model, input_tokens, output_tokens,"
                    " cache_read_tokens, cache_write_tokens, cost_usd, message_ids, created_at)"
                    " VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        ids[0] if ids else "",
                        usage.model,
                        usage.input_tokens,
                        usage.output_tokens,
                        usage.cache_read_tokens,
                        usage.cache_write_tokens,
                        usage.cost_usd,
                        json.dumps(list(ids)),
                        now_iso(),
                    ),
                )
            stamp = now_iso()
            conn.executemany(
                "INSERT OR REPLACE INTO processing_ack (message_id, status, status_changed)"
                " VALUES (?, ?, ?)",
                [(i, status, stamp) for i in ids],
            )
        acks.set(ids, status)
        return seqs

    def send(self, message: OutboundMessage) -> int:
        """Write one row now (mid-turn tools); returns its seq."""
        with self._turn_write() as (conn, _acks):
            return self._insert(conn, message, self._inbound_seq())

    def _inbound_seq(self) -> int | None:
        with read_inbound(self.inbound_path) as inbound:
            found: int | None = inbound.execute("SELECT MAX(seq) FROM messages_in").fetchone()[0]
        return found

    def _insert(
        self, conn: sqlite3.Connection, message: OutboundMessage, inbound_seq: int | None
    ) -> int:
        max_out = conn.execute("SELECT MAX(seq) FROM messages_out").fetchone()[0]
        seq = next_runner_seq(max(max_out or 0, inbound_seq or 0))
        conn.execute(
            "INSERT INTO messages_out (id, seq, in_reply_to, timestamp, deliver_after, kind,"
            " channel_type, platform_id, thread_id, content) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                message.id or new_out_id(),
                seq,
                message.in_reply_to,
                now_iso(),
                message.deliver_after,
                message.kind,
                message.channel_type,
                message.platform_id,
                message.thread_id,
                json.dumps(message.content),
            ),
        )
        return seq

    def set_state(self, key: str, value: str | None) -> None:
        with self._turn_write() as (conn, _acks):
            if value is None:
                conn.execute("DELETE FROM session_state WHERE key = ?", (key,))
            else:
                conn.execute(
                    "INSERT OR REPLACE INTO session_state (key, value) VALUES (?, ?)", (key, value)
                )

    def get_state(self, key: str) -> str | None:
        with write_outbound(self.outbound_path) as conn:
            found = conn.execute("SELECT value FROM session_state WHERE key = ?", (key,)).fetchone()
        return found[0] if found else None

    def record_start(self, pid: int) -> None:
        with write_outbound(self.outbound_path) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO runner_state (id, pid, started_at, current_tool,"
                " tool_declared_timeout_ms, tool_started_at) VALUES (1, ?, ?, NULL, NULL, NULL)",
                (pid, now_iso()),
            )

    def set_current_tool(self, tool: str | None, *, declared_timeout_ms: int | None = None) -> None:
        """Declare a running tool so the host's stuck detection can widen its threshold."""
        with self._turn_write() as (conn, _acks):
            conn.execute(
                "UPDATE runner_state SET current_tool = ?, tool_declared_timeout_ms = ?,"
                " tool_started_at = ? WHERE id = 1",
                (tool, declared_timeout_ms, now_iso() if tool else None),
            )


def _read_acks(conn: sqlite3.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT message_id, status FROM processing_ack").fetchall())


def _not_pending(conn: sqlite3.Connection, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` have a ``messages_in`` row that is no longer pending."""
    found: set[str] = set()
    for start in range(0, len(ids), _PARAMS_PER_STATEMENT):
        chunk = list(ids[start : start + _PARAMS_PER_STATEMENT])
        marks = ",".join("?" * len(chunk))
        found |= {
            r[0]
            for r in conn.execute(
                f"SELECT id FROM messages_in WHERE id IN ({marks}) AND status != 'pending'", chunk
            )
        }
    return found


def _projection(conn: sqlite3.Connection) -> Projection:
    rows = conn.execute(_DESTINATIONS).fetchall()
    found = conn.execute(_ROUTING).fetchone()
    return [Destination(*r) for r in rows], Routing(*found) if found else None
