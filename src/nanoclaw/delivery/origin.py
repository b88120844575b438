"""Who asked: the originating user of an agent's request, from facts the host recorded.

Invariant (DESIGN §2.6/§2.7): the user behind a ``system`` row is derived only from what the
host itself knows — which ``messages_in`` rows it wrote (their host-assigned ``seq`` and their
sender), and which of them it had already seen finished at its PREVIOUS look at the session
(``messages_in.status`` and the runner's acks as read then). Nothing the runner writes into the
request (``seq``, ``timestamp``, ``in_reply_to`` beyond naming a row, destination, content) and
no ack written after that previous look can widen a user's authority.

Why "finished at the previous look" is sound: every delivery pass reads the session's state
(inbound rows + acks) BEFORE it reads ``messages_out``. A row seen finished at pass ``d-1``
finished before pass ``d-1`` read ``messages_out``; a request first seen at pass ``d`` was not
there then, so it was written after that row's turn ended and cannot belong to it. Every other
row the host had written when it first read the request (in progress, queued, context rows)
may have reached the agent: if they do not all come from one user, the answer is "nobody", and
the request goes to an approval card. After a host restart nothing is known finished, so every
row counts (more cards, never fewer). A row can finish and then be made pending again (an
admin's ``messages retry``): one unfinished when a request is decided, though finished in
``messages_in`` at the previous look, counts too.

A pass that has no ack to fold and finds no ``messages_out`` row to read (a runner's claim)
observes nothing: the previous look stays the last pass that observed, and the argument holds
for it unchanged, since the passes after it read no row at all. Every pass that reads a row
observes first and then reads ``messages_out`` (again, if it had looked).
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import or_, select

from nanoclaw.contract import sessiondb
from nanoclaw.contract.layout import SessionLayout
from nanoclaw.contract.sessiondb import InboundStatus, parse_content
from nanoclaw.contract.timeutil import now_iso
from nanoclaw.db.sqlite import EngineCache
from nanoclaw.sessions.schema import messages_in

FINISHED_STATUSES = frozenset({"completed", "failed"})
# The other statuses the DDL's CHECK allows: read by ``IN`` so the status index answers it
# (a ``NOT IN`` would scan the whole history).
UNFINISHED_STATUSES = tuple(sorted(s.value for s in InboundStatus if s not in FINISHED_STATUSES))
# One statement, so one read (an implicit read transaction): the highest seq (the row with
# no id: ``id`` is the primary key, never NULL) and the ids of the unfinished rows.
_OBSERVATION = (
    "SELECT NULL, MAX(seq) FROM messages_in UNION ALL SELECT id, NULL FROM messages_in"
    f" WHERE status IN ({','.join('?' * len(UNFINISHED_STATUSES))})"
)
# Up to this many previously unfinished ids are named in the facts query; more read every row.
FACT_IDS_BOUND = 500
# Decisions kept per session for requests not yet settled (a request's decision is dropped once
# it is terminal, when no pass reads it again); an evicted one reads as "nobody" (an approval
# card), never as someone: it is not decided again (``first_sight``).
DECISIONS_KEPT_PER_SESSION = 1024


@dataclass(frozen=True)
class InboundFact:
    """One ``messages_in`` row as the host wrote it (``seq`` and sender are host-assigned)."""

    id: str
    seq: int
    kind: str
    channel_type: str | None
    sender_id: str | None
    status: str = "pending"
    process_after: str | None = None


@dataclass(frozen=True)
class Observation:
    """The session as one delivery pass saw it before reading ``messages_out``."""

    high_seq: int  # the highest inbound seq the host had written
    unfinished: frozenset[str]  # inbound ids at or below it not yet finished
    # Rows ``messages_in`` still had unfinished whose acks said finished (not yet folded in).
    acked_finished: frozenset[str] = frozenset()


def sender_of(fact: InboundFact) -> str | None:
    """The user whose words a row carries; None for tasks, webhooks, agents and host notices."""
    if fact.kind != "chat" or fact.channel_type in (None, "agent"):
        return None
    return fact.sender_id


def decide_origin(
    facts: Sequence[InboundFact],
    *,
    named: str | None,
    before: Observation | None,
    high_seq: int,
    now: str,
) -> str | None:
    """Pure: the one user behind every row that may have reached the agent, else None.

    ``facts`` are the inbound rows the host had written; ``high_seq`` bounds them to what was
    written when the request was first read; ``before`` is the previous pass (None: unknown,
    so every row counts); ``named`` is the request's ``in_reply_to``, which must name one of
    the candidate rows and is used for nothing else. A paused row, or one not due at
    ``now`` (a scheduled task waiting for its time), is not handed to a turn and is left out.
    """
    if not named:
        return None
    candidates = [
        f
        for f in facts
        if f.seq <= high_seq
        and f.kind != "system"  # host-written action results carry nobody's words
        and f.status != "paused"
        and not (f.process_after is not None and f.process_after > now)
        and (
            before is None
            or f.seq > before.high_seq
            or f.id in before.unfinished
            or _reopened(f, before)
        )
    ]
    if not any(f.id == named for f in candidates):
        return None  # an old, finished, unknown or future row: it names nobody's turn
    senders = {sender_of(f) for f in candidates}
    if len(senders) != 1:
        return None
    return next(iter(senders))


def _reopened(fact: InboundFact, before: Observation) -> bool:
    """Unfinished now, though finished at the previous look and not merely waiting since to
    be folded in (:meth:`OriginLedger.folded`): an admin's retry made it pending again, so it
    may have reached any turn since."""
    return fact.status not in FINISHED_STATUSES and fact.id not in before.acked_finished


def _sender_id(raw: Any) -> str | None:
    value = raw if isinstance(raw, dict) else parse_content(raw)
    sender = value.get("sender_id")
    return str(sender) if sender else None


class OriginLedger:
    """Per session: the previous pass's observation and the origin decided at first sight.

    The delivery loop calls ``observe`` before it reads ``messages_out`` and ``first_sight``
    with the rows it read, both on the session's executor lane (they read only its
    ``inbound.db``) under the delivery loop's per-session lock, never two at once for one
    session; the action gate asks ``origin``; the loop calls ``settle`` (on the event loop,
    under the same lock) for the requests that became terminal.
    """

    def __init__(self, *, engines: EngineCache) -> None:
        self.engines = engines
        self._previous: dict[str, Observation] = {}
        self._current: dict[str, Observation] = {}
        self._decided: dict[str, OrderedDict[str, str | None]] = {}
        self._read_through: dict[str, int] = {}  # the highest messages_out seq a pass read

    def observe(
        self,
        session_id: str,
        layout: SessionLayout,
        acks: Mapping[str, str],
        *,
        inbound: sqlite3.Connection | None = None,
    ) -> None:
        """Record what the host had written and seen finished, before reading requests
        (``inbound``: an open connection to use)."""
        # Plain sqlite3 (every drain pass runs this).
        with sessiondb.reading_with(layout.inbound_db, inbound, confined=True) as conn:
            rows = conn.execute(_OBSERVATION, UNFINISHED_STATUSES).fetchall()
        done = {mid for mid, status in acks.items() if status in FINISHED_STATUSES}
        high = next((seq for mid, seq in rows if mid is None), None)
        open_ids = {mid for mid, _ in rows if mid is not None}
        self._current[session_id] = Observation(
            high_seq=int(high or 0),
            unfinished=frozenset(open_ids - done),
            acked_finished=frozenset(open_ids & done),
        )

    def first_sight(
        self,
        session_id: str,
        layout: SessionLayout,
        requests: Iterable[tuple[str, int, str | None]],
        *,
        read_through: int,
    ) -> None:
        """Decide the origin of each request (id, seq, in_reply_to) read for the first time;
        ``read_through`` is the highest ``messages_out`` seq this pass read.

        A request at or below what an earlier pass read and without a decision was decided and
        evicted: it is nobody's (decided again with later facts, it could name someone)."""
        current = self._current.pop(session_id, None)
        if current is None:
            return  # no observation this pass: nothing decided, so nobody (a card)
        decided = self._decided.setdefault(session_id, OrderedDict())
        seen_through = self._read_through.get(session_id, 0)
        self._read_through[session_id] = max(seen_through, read_through)
        new: list[tuple[str, str | None]] = []
        for rid, seq, named in requests:
            if rid in decided or seq <= seen_through:
                continue  # decided, or read before and evicted or settled: None is nobody
            new.append((rid, named))
        if new:
            before = self._previous.get(session_id)
            facts = self._facts(layout, current.high_seq, before)
            for rid, named in new:
                decided[rid] = decide_origin(
                    facts, named=named, before=before, high_seq=current.high_seq, now=now_iso()
                )
        while len(decided) > DECISIONS_KEPT_PER_SESSION:
            decided.popitem(last=False)
        self._previous[session_id] = current

    def origin(self, session_id: str, request_id: str) -> str | None:
        """The user decided at first sight; None when the host never decided it."""
        decided = self._decided.get(session_id)
        return decided.get(request_id) if decided is not None else None

    def settle(self, session_id: str, request_ids: Iterable[str]) -> None:
        """These requests are terminal (no pass reads them again): their origin is never
        asked again (an approved card runs as its approver), so it is not kept."""
        decided = self._decided.get(session_id)
        if decided is not None:
            for request_id in request_ids:
                decided.pop(request_id, None)

    def folded(self, session_id: str, message_ids: Iterable[str]) -> None:
        """These rows' finished acks were folded into ``messages_in`` (called after the write
        committed, under the delivery loop's per-session lock): unfinished there again later,
        they were reopened, not still waiting to be folded in."""
        before = self._previous.get(session_id)
        if before is not None and not before.acked_finished.isdisjoint(message_ids):
            self._previous[session_id] = replace(
                before, acked_finished=before.acked_finished.difference(message_ids)
            )

    def sessions(self) -> set[str]:
        """The sessions anything is kept for (each ``set`` of a dict is one C call, so a lane
        thread's insert cannot interleave with it)."""
        return (
            set(self._previous) | set(self._current) | set(self._decided) | set(self._read_through)
        )

    def forget(self, session_id: str) -> None:
        self._previous.pop(session_id, None)
        self._current.pop(session_id, None)
        self._decided.pop(session_id, None)
        self._read_through.pop(session_id, None)

    def _facts(
        self, layout: SessionLayout, high_seq: int, before: Observation | None
    ) -> list[InboundFact]:
        """The rows :func:`decide_origin` may count: written by ``high_seq`` and, when the
        previous pass is known, written since it or unfinished then (it filters the same way;
        this only spares reading the finished history)."""
        query = select(
            messages_in.c.id,
            messages_in.c.seq,
            messages_in.c.kind,
            messages_in.c.channel_type,
            messages_in.c.content,
            messages_in.c.status,
            messages_in.c.process_after,
        ).where(messages_in.c.seq <= high_seq)
        if before is not None and len(before.unfinished) <= FACT_IDS_BOUND:
            query = query.where(
                or_(
                    messages_in.c.seq > before.high_seq,
                    messages_in.c.id.in_(sorted(before.unfinished)),
                    messages_in.c.status.in_(UNFINISHED_STATUSES),  # reopened ones among them
                )
            )
        with self.engines.get(layout.inbound_db, readonly=True).connect() as conn:
            rows = conn.execute(query).all()
        return [
            InboundFact(
                id=r.id,
                seq=r.seq,
                kind=r.kind,
                channel_type=r.channel_type,
                sender_id=_sender_id(r.content),
                status=r.status,
                process_after=r.process_after,
            )
            for r in rows
        ]
