"""The session-DB contract host and runner share: DDL, versioned migrations, rows, I/O rules.

Stdlib ``sqlite3`` only: the runner imports this module inside the sandbox image.

Invariants owned here (DESIGN §2):
1. One writer per file: the host writes ``inbound.db``, the runner writes ``outbound.db``.
   This module gives both sides the same helpers; who calls which is the callers' rule.
2. ``journal_mode=DELETE``, never WAL. A write opens a connection, runs ``BEGIN IMMEDIATE``,
   commits (or rolls back) and closes (:func:`writing`). A read opens a fresh read-only
   connection (``mode=ro``, ``mmap_size=0``: the build's default, else set) and closes it
   (:func:`reading`): a cached reader can keep a stale view of a file shared across a mount.
   Connections run with ``isolation_level=None``, so the only transactions are the ones
   written here.
3. Sequence parity is a CHECK constraint of the DDL: ``messages_in.seq`` even (≥ 2),
   ``messages_out.seq`` odd.

Schema versions: each file's schema is an ordered list of steps; ``PRAGMA user_version`` is the
number of steps applied. :func:`migrate` applies the missing ones in one ``BEGIN IMMEDIATE``
transaction, adopts a file stamped by the Alembic environments NanoClaw used before this module
(``alembic_version`` → the equal step), and refuses a file newer than this code
(:class:`SchemaTooNewError`) instead of guessing.
"""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote

from nanoclaw.contract.confined import ConfinedDir
from nanoclaw.contract.dbprobe import connect_session_db
from nanoclaw.errors import SchemaVersionError, StorageError

log = logging.getLogger("nanoclaw.contract.sessiondb")

BUSY_TIMEOUT_MS = 5000


class SessionFile(StrEnum):
    """The two files of a session; the value is the name the layout and errors use."""

    INBOUND = "inbound"  # written by the host, read by the runner
    OUTBOUND = "outbound"  # written by the runner, read by the host


class InboundStatus(StrEnum):
    """``messages_in.status`` — the one place a message's status lives (see ``AckStatus``)."""

    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"
    PAUSED = "paused"


class AckStatus(StrEnum):
    """``processing_ack.status``: the runner's claim and verdict, which the host folds into
    ``messages_in.status`` on ack sync (the runner never writes ``inbound.db``)."""

    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


class DeliveryStatus(StrEnum):
    """``delivered.status``: ``delivered`` and ``failed`` are terminal."""

    DELIVERED = "delivered"
    FAILED = "failed"
    RETRYING = "retrying"


# -- DDL: one tuple of statements per version step ----------------------------------------------
# Step 1 of each file is the schema the first Alembic revision created, statement for statement,
# so a file adopted from Alembic and a file created here are the same schema.

_INBOUND_V1 = (
    """CREATE TABLE delivered (
        message_out_id VARCHAR(256) NOT NULL,
        platform_message_id VARCHAR(256),
        status VARCHAR(16) NOT NULL,
        attempts INTEGER DEFAULT '0' NOT NULL,
        last_error TEXT,
        next_attempt_at VARCHAR(32),
        delivered_at VARCHAR(32),
        CONSTRAINT pk_delivered PRIMARY KEY (message_out_id),
        CONSTRAINT ck_delivered_status CHECK (status IN ('delivered', 'failed', 'retrying'))
    )""",
    """CREATE TABLE destinations (
        name VARCHAR(128) NOT NULL,
        display_name VARCHAR(256),
        type VARCHAR(16) NOT NULL,
        channel_type VARCHAR(32),
        platform_id VARCHAR(256),
        agent_group_id VARCHAR(64),
        CONSTRAINT pk_destinations PRIMARY KEY (name),
        CONSTRAINT ck_destinations_type CHECK (type IN ('channel', 'agent'))
    )""",
    """CREATE TABLE messages_in (
        id VARCHAR(256) NOT NULL,
        seq INTEGER NOT NULL,
        kind VARCHAR(16) NOT NULL,
        timestamp VARCHAR(32) NOT NULL,
        status VARCHAR(16) DEFAULT 'pending' NOT NULL,
        process_after VARCHAR(32),
        recurrence VARCHAR(128),
        series_id VARCHAR(256),
        tries INTEGER DEFAULT '0' NOT NULL,
        "trigger" INTEGER DEFAULT '1' NOT NULL,
        channel_type VARCHAR(32),
        platform_id VARCHAR(256),
        thread_id VARCHAR(256),
        content TEXT NOT NULL,
        source_session_id VARCHAR(64),
        on_wake INTEGER DEFAULT '0' NOT NULL,
        CONSTRAINT pk_messages_in PRIMARY KEY (id),
        CONSTRAINT ck_messages_in_kind CHECK (kind IN ('chat', 'task', 'webhook', 'system')),
        CONSTRAINT ck_messages_in_status
            CHECK (status IN ('pending', 'completed', 'failed', 'paused')),
        CONSTRAINT ck_messages_in_seq_even CHECK (seq % 2 = 0 AND seq >= 2),
        CONSTRAINT ck_messages_in_trigger CHECK ("trigger" IN (0, 1)),
        CONSTRAINT uq_messages_in_seq UNIQUE (seq)
    )""",
    """CREATE TABLE session_routing (
        id INTEGER NOT NULL,
        channel_type VARCHAR(32),
        platform_id VARCHAR(256),
        thread_id VARCHAR(256),
        CONSTRAINT pk_session_routing PRIMARY KEY (id),
        CONSTRAINT ck_session_routing_single_row CHECK (id = 1)
    )""",
)

# Recurring tasks: the IANA zone the cron is evaluated in (NULL = the host's) and the catch-up
# policy after downtime ('once' when NULL, or 'skip'); see nanoclaw.scheduling.
_INBOUND_V2 = (
    "ALTER TABLE messages_in ADD COLUMN recurrence_tz VARCHAR(64)",
    "ALTER TABLE messages_in ADD COLUMN catch_up VARCHAR(8)",
)

_OUTBOUND_V1 = (
    """CREATE TABLE messages_out (
        id VARCHAR(256) NOT NULL,
        seq INTEGER NOT NULL,
        in_reply_to VARCHAR(256),
        timestamp VARCHAR(32) NOT NULL,
        deliver_after VARCHAR(32),
        kind VARCHAR(16) NOT NULL,
        channel_type VARCHAR(32),
        platform_id VARCHAR(256),
        thread_id VARCHAR(256),
        content TEXT NOT NULL,
        CONSTRAINT pk_messages_out PRIMARY KEY (id),
        CONSTRAINT ck_messages_out_kind CHECK (kind IN ('chat', 'system')),
        CONSTRAINT ck_messages_out_seq_odd CHECK (seq % 2 = 1),
        CONSTRAINT uq_messages_out_seq UNIQUE (seq)
    )""",
    """CREATE TABLE processing_ack (
        message_id VARCHAR(256) NOT NULL,
        status VARCHAR(16) NOT NULL,
        status_changed VARCHAR(32) NOT NULL,
        CONSTRAINT pk_processing_ack PRIMARY KEY (message_id),
        CONSTRAINT ck_processing_ack_status
            CHECK (status IN ('processing', 'completed', 'failed'))
    )""",
    """CREATE TABLE runner_state (
        id INTEGER NOT NULL,
        pid INTEGER,
        started_at VARCHAR(32),
        current_tool VARCHAR(64),
        tool_declared_timeout_ms INTEGER,
        tool_started_at VARCHAR(32),
        CONSTRAINT pk_runner_state PRIMARY KEY (id),
        CONSTRAINT ck_runner_state_single_row CHECK (id = 1)
    )""",
    """CREATE TABLE session_state (
        "key" VARCHAR(128) NOT NULL,
        value TEXT NOT NULL,
        CONSTRAINT pk_session_state PRIMARY KEY ("key")
    )""",
)

# The agent's conversation (one row per Messages API message, oldest first; ``role = 'summary'``
# holds the compacted summary of every turn before it) and tokens and cost per turn, which the
# host copies into the central DB.
_OUTBOUND_V2 = (
    """CREATE TABLE transcript (
        id INTEGER NOT NULL,
        turn_id VARCHAR(64) NOT NULL,
        role VARCHAR(16) NOT NULL,
        content TEXT NOT NULL,
        created_at VARCHAR(32) NOT NULL,
        CONSTRAINT pk_transcript PRIMARY KEY (id),
        CONSTRAINT ck_transcript_role CHECK (role IN ('user', 'assistant', 'summary'))
    )""",
    """CREATE TABLE usage (
        id INTEGER NOT NULL,
        turn_id VARCHAR(64) NOT NULL,
        model VARCHAR(128) NOT NULL,
        input_tokens INTEGER DEFAULT '0' NOT NULL,
        output_tokens INTEGER DEFAULT '0' NOT NULL,
        cache_read_tokens INTEGER DEFAULT '0' NOT NULL,
        cache_write_tokens INTEGER DEFAULT '0' NOT NULL,
        cost_usd FLOAT DEFAULT '0' NOT NULL,
        message_ids TEXT DEFAULT '[]' NOT NULL,
        created_at VARCHAR(32) NOT NULL,
        CONSTRAINT pk_usage PRIMARY KEY (id)
    )""",
)

# Indexes a pass needs so its cost does not grow with the session's history: the runner's
# pending scan and the host's unfinished-row look-up filter on ``messages_in.status``; the
# host reads acks changed since its watermark by ``processing_ack.status_changed``.
_INBOUND_V3 = ("CREATE INDEX ix_messages_in_status ON messages_in (status)",)
_OUTBOUND_V3 = ("CREATE INDEX ix_processing_ack_status_changed ON processing_ack (status_changed)",)

Step = tuple[str, ...]

# Append a step to change a schema; never edit a released one (files in the field are at it).
STEPS: dict[SessionFile, tuple[Step, ...]] = {
    SessionFile.INBOUND: (_INBOUND_V1, _INBOUND_V2, _INBOUND_V3),
    SessionFile.OUTBOUND: (_OUTBOUND_V1, _OUTBOUND_V2, _OUTBOUND_V3),
}

# The Alembic revisions NanoClaw stamped before this contract, and the step each one equals.
ALEMBIC_REVISIONS: dict[SessionFile, dict[str, int]] = {
    SessionFile.INBOUND: {"0001_inbound": 1, "0002_inbound": 2},
    SessionFile.OUTBOUND: {"0001_outbound": 1, "0002_outbound": 2},
}


def head_version(file: SessionFile) -> int:
    """The schema version this code writes and expects for ``file``."""
    return len(STEPS[file])


class SchemaTooNewError(SchemaVersionError):
    """A session DB was migrated by a newer NanoClaw than this one; it is never touched."""

    def __init__(self, *, path: str, file: SessionFile, expected: int, found: int) -> None:
        StorageError.__init__(
            self,
            f"{path}: {file.value}.db is at schema version {found}, newer than this NanoClaw "
            f"knows (version {expected}); it was written by a newer NanoClaw — upgrade NanoClaw "
            "rather than run an older one on it",
            path=path,
        )
        self.expected = str(expected)
        self.found = str(found)


# -- connections ---------------------------------------------------------------------------------
def connect(path: Path, *, readonly: bool, confined: bool = False) -> sqlite3.Connection:
    """A connection set up by the rules above. The caller closes it (use the helpers below).

    ``confined`` (every host-side open: the sandbox can write the folder): the file and its
    journal are probed through the folder's descriptor first and SQLite opens the probed file
    through ``/proc/self/fd`` (:mod:`nanoclaw.contract.dbprobe`, invariant 6). The runner, inside
    its sandbox, opens by path.
    """
    timeout_s = BUSY_TIMEOUT_MS / 1000
    if confined:
        conn = connect_session_db(path, readonly=readonly, timeout_s=timeout_s)
    elif readonly:
        conn = sqlite3.connect(
            _readonly_uri(str(path)),
            uri=True,
            timeout=timeout_s,
            isolation_level=None,
            check_same_thread=False,
        )
    else:
        conn = sqlite3.connect(
            path, timeout=timeout_s, isolation_level=None, check_same_thread=False
        )
    try:
        conn.isolation_level = None  # the only transactions are the ones written here
        # The busy timeout is set by sqlite3.connect(timeout=...) (sqlite3_busy_timeout): a
        # PRAGMA busy_timeout on every open would only repeat it.
        if _maps_files_by_default():
            conn.execute("PRAGMA mmap_size=0")
        if not readonly:
            conn.execute("PRAGMA journal_mode=DELETE")
    except BaseException:
        conn.close()
        raise
    return conn


@functools.cache
def _maps_files_by_default() -> bool:
    """Whether this SQLite build may memory-map files unless told not to: only then does a
    connection need ``PRAGMA mmap_size=0``. A fresh connection starts at the build's
    ``SQLITE_DEFAULT_MMAP_SIZE``; a build that reports no ``DEFAULT_MMAP_SIZE=0`` (its
    options left out, or a value not read as a plain 0) gets the PRAGMA on every connection."""
    conn = sqlite3.connect(":memory:")
    try:
        options = [str(row[0]) for row in conn.execute("PRAGMA compile_options")]
    finally:
        conn.close()
    return "DEFAULT_MMAP_SIZE=0" not in options


@functools.lru_cache(maxsize=256)
def _readonly_uri(path: str) -> str:
    return f"file:{quote(path)}?mode=ro"


@contextmanager
def reading(path: Path, *, confined: bool = False) -> Iterator[sqlite3.Connection]:
    """A fresh read-only connection for one read, closed afterwards."""
    conn = connect(path, readonly=True, confined=confined)
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def reading_with(
    path: Path, conn: sqlite3.Connection | None, *, confined: bool = False
) -> Iterator[sqlite3.Connection]:
    """``conn`` when the caller already holds one open on ``path`` (a pass of several reads
    opens the file once), else a fresh read-only connection as :func:`reading` gives."""
    if conn is not None:
        yield conn
        return
    with reading(path, confined=confined) as fresh:
        yield fresh


class InboundUnreadableError(Exception):
    """A read-only reader met a hot journal for the whole retry deadline: transient, the
    writer's next open rolls it back (the runner treats it as "nothing this poll")."""


# A hot journal met by a read-only reader: retried this long (first wait, doubling, capped).
READ_RETRY_DEADLINE_S = 2.0
READ_RETRY_FIRST_WAIT_S = 0.01
READ_RETRY_MAX_WAIT_S = 0.25
SQLITE_READONLY = 8  # primary code of every SQLITE_READONLY_* extended code


def _needs_a_writer(exc: sqlite3.OperationalError) -> bool:
    """A read-only connection refused to read because only a writer could recover the file."""
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) == SQLITE_READONLY


def _open_snapshot(path: Path) -> sqlite3.Connection:
    """A read-only connection inside a read transaction (one consistent view for the block).

    A hot journal (a write interrupted mid-transaction) cannot be rolled back by a read-only
    connection (``SQLITE_READONLY_ROLLBACK``); that is transient, so it is retried with
    backoff for ``READ_RETRY_DEADLINE_S`` and then :class:`InboundUnreadableError` is raised.
    """
    deadline = time.monotonic() + READ_RETRY_DEADLINE_S
    wait_s = READ_RETRY_FIRST_WAIT_S
    while True:
        conn = connect(path, readonly=True)
        try:
            conn.execute("BEGIN")
            # The first read takes the shared lock; the hot-journal check happens here.
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError as exc:
            conn.close()
            if not _needs_a_writer(exc):
                raise
            if time.monotonic() + wait_s > deadline:
                raise InboundUnreadableError(f"{path.name}: {exc}") from exc
            log.debug("%s needs a writer's recovery (%s); retrying", path.name, exc)
            time.sleep(wait_s)
            wait_s = min(wait_s * 2, READ_RETRY_MAX_WAIT_S)


@contextmanager
def reading_snapshot(path: Path) -> Iterator[sqlite3.Connection]:
    """The runner's read of ``inbound.db``: fresh, read-only, one read transaction, and a hot
    journal waited out (see :func:`_open_snapshot`); closed afterwards."""
    conn = _open_snapshot(path)
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def writing(path: Path, *, confined: bool = False) -> Iterator[sqlite3.Connection]:
    """Open, ``BEGIN IMMEDIATE``, commit (roll back on error) and close."""
    conn = connect(path, readonly=False, confined=confined)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            # SQLite may have rolled back already (a full disk, an I/O error): a second
            # ROLLBACK would raise and hide the real error.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        conn.close()


# -- versions -------------------------------------------------------------------------------------
def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _alembic_version(conn: sqlite3.Connection, file: SessionFile, path: str) -> int:
    """The step an Alembic-stamped file is at (0 for a file with no tables yet)."""
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
    ).fetchone()
    if has_table is None:
        return 0
    found = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    if found is None:
        return 0
    known = ALEMBIC_REVISIONS[file]
    if found[0] not in known:
        raise SchemaVersionError(
            path=path, expected=" or ".join(sorted(known)), found=str(found[0])
        )
    return known[found[0]]


def check_version(conn: sqlite3.Connection, file: SessionFile, path: str) -> int:
    """The file's version; a file newer than this code raises :class:`SchemaTooNewError`."""
    found = schema_version(conn)
    head = head_version(file)
    if found > head:
        raise SchemaTooNewError(path=path, file=file, expected=head, found=found)
    return found


def migrate(
    path: Path,
    file: SessionFile,
    *,
    confined: bool = False,
    seed: Callable[[sqlite3.Connection], None] | None = None,
) -> int:
    """Create or upgrade ``file`` at ``path`` to :func:`head_version`; returns the version.

    A file already at head costs one open and one pragma. ``seed`` writes rows in the same
    ``BEGIN IMMEDIATE`` transaction as the steps and ``user_version`` (a new file is created
    and filled in one commit), or in a transaction of its own when the file is at head
    already. Only the file's writer (or the host while no runner is alive) may call this.
    """
    head = head_version(file)
    if confined and seed is None and _create_at_head(path, file):
        return head
    conn = connect(path, readonly=False, confined=confined)
    try:
        if check_version(conn, file, str(path)) == head and seed is None:
            return head
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = check_version(conn, file, str(path))  # another writer may have won
            if version == 0:
                version = _alembic_version(conn, file, str(path))
                conn.execute("DROP TABLE IF EXISTS alembic_version")
            if version != head:
                for number, step in enumerate(STEPS[file][version:], start=version + 1):
                    for statement in step:
                        conn.execute(statement)
                    version = number
                conn.execute(f"PRAGMA user_version={version}")
            if seed is not None:
                seed(conn)
        except BaseException:
            # SQLite may have rolled back already (a full disk, an I/O error): a second
            # ROLLBACK would raise and hide the real error.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return head
    finally:
        conn.close()


@functools.cache
def head_image(file: SessionFile) -> bytes:
    """A new ``file`` at head, as its bytes: built once per process by running every step.

    A missing host-side session file is written as this image, whole or not at all (written
    and synced under a temporary name, then linked): a new session costs no SQLite schema work
    (a dozen DDL statements, each re-reading the schema).
    """
    import tempfile  # host-side only: kept out of the runner's start-up imports

    with tempfile.TemporaryDirectory(prefix="nanoclaw-image-") as scratch:
        path = Path(scratch) / f"{file.value}.db"
        conn = connect(path, readonly=False)
        try:
            conn.execute("BEGIN IMMEDIATE")
            for step in STEPS[file]:
                for statement in step:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={head_version(file)}")
            conn.execute("COMMIT")
        finally:
            conn.close()
        return path.read_bytes()


def _create_at_head(path: Path, file: SessionFile) -> bool:
    """Write a missing ``<session>/<sub>/<name>`` as the head image; False when any entry has
    that name (then it is opened, probed and migrated as usual)."""
    with ConfinedDir.open(path.parent.parent, path.parent.name) as folder:
        return folder.create_whole(path.name, head_image(file))


def expect_version(path: Path, file: SessionFile, expected: int, *, writer: bool = False) -> None:
    """Raise :class:`SchemaVersionError` unless the file is at ``expected``.

    ``writer``: the caller is the file's writer and opens it read-write, which also rolls back
    a hot journal its own predecessor left behind.
    """
    conn = connect(path, readonly=not writer)
    try:
        found = check_version(conn, file, str(path))
    finally:
        conn.close()
    if found != expected:
        raise SchemaVersionError(path=str(path), expected=str(expected), found=str(found))


# -- the content column ------------------------------------------------------------------------
def parse_content(raw: object) -> dict[str, Any]:
    """The one parser of ``content`` columns: a JSON object, or the raw value as ``text``."""
    if not isinstance(raw, str | bytes):
        return {"text": "" if raw is None else str(raw)}
    try:
        value = json.loads(raw)
    except ValueError:
        return {"text": raw.decode() if isinstance(raw, bytes) else raw}
    return value if isinstance(value, dict) else {"text": str(value)}


def dump_content(content: dict[str, Any]) -> str:
    return json.dumps(content)


# -- row types ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InboundRow:
    """A ``messages_in`` row as the runner reads it."""

    id: str
    seq: int
    kind: str
    timestamp: str
    status: str
    process_after: str | None
    trigger: int
    channel_type: str | None
    platform_id: str | None
    thread_id: str | None
    content: dict[str, Any]
    on_wake: int
    series_id: str | None
    source_session_id: str | None

    @property
    def text(self) -> str:
        value = self.content.get("text") or self.content.get("prompt") or ""
        return str(value)

    @property
    def is_command(self) -> bool:
        return self.kind == "chat" and self.text.lstrip().startswith("/")


INBOUND_ROW_COLUMNS = (
    "id, seq, kind, timestamp, status, process_after, trigger, channel_type, platform_id,"
    " thread_id, content, on_wake, series_id, source_session_id"
)


def inbound_row(values: sqlite3.Row | tuple[Any, ...]) -> InboundRow:
    """An :class:`InboundRow` from a row selected with :data:`INBOUND_ROW_COLUMNS`."""
    return InboundRow(
        id=values[0],
        seq=values[1],
        kind=values[2],
        timestamp=values[3],
        status=values[4],
        process_after=values[5],
        trigger=values[6],
        channel_type=values[7],
        platform_id=values[8],
        thread_id=values[9],
        content=parse_content(values[10]),
        on_wake=values[11],
        series_id=values[12],
        source_session_id=values[13],
    )


@dataclass(frozen=True)
class OutboundRow:
    """A ``messages_out`` row as the host reads it."""

    id: str
    seq: int
    in_reply_to: str | None
    timestamp: str
    deliver_after: str | None
    kind: str
    channel_type: str | None
    platform_id: str | None
    thread_id: str | None
    content: dict[str, Any]


OUTBOUND_ROW_COLUMNS = (
    "id, seq, in_reply_to, timestamp, deliver_after, kind, channel_type, platform_id,"
    " thread_id, content"
)


def outbound_row(values: sqlite3.Row | tuple[Any, ...]) -> OutboundRow:
    """An :class:`OutboundRow` from a row selected with :data:`OUTBOUND_ROW_COLUMNS`."""
    return OutboundRow(
        id=values[0],
        seq=values[1],
        in_reply_to=values[2],
        timestamp=values[3],
        deliver_after=values[4],
        kind=values[5],
        channel_type=values[6],
        platform_id=values[7],
        thread_id=values[8],
        content=parse_content(values[9]),
    )


@dataclass(frozen=True)
class Destination:
    """A ``destinations`` row: a name the agent may address."""

    name: str
    display_name: str | None
    type: str  # "channel" | "agent"
    channel_type: str | None
    platform_id: str | None
    agent_group_id: str | None


@dataclass(frozen=True)
class Routing:
    """The ``session_routing`` row: where the session's replies go by default."""

    channel_type: str | None
    platform_id: str | None
    thread_id: str | None


@dataclass(frozen=True)
class AckRow:
    """A ``processing_ack`` row: the runner's claim or verdict on one inbound message."""

    message_id: str
    status: str
    status_changed: str


@dataclass(frozen=True)
class DeliveryState:
    """A ``delivered`` row as the host reads it."""

    status: str
    attempts: int
    next_attempt_at: str | None
    platform_message_id: str | None


@dataclass(frozen=True)
class RunnerState:
    """The ``runner_state`` row the runner keeps about itself."""

    pid: int | None
    started_at: str | None
    current_tool: str | None
    tool_declared_timeout_ms: int | None
    tool_started_at: str | None


@dataclass(frozen=True)
class UsageRow:
    """A ``usage`` row: one turn's tokens and cost."""

    id: int
    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float
    created_at: str


def read_usage(conn: sqlite3.Connection, *, after_id: int) -> list[UsageRow]:
    rows = conn.execute(
        "SELECT id, model, input_tokens, output_tokens, cache_read_tokens,"
        " cache_write_tokens, cost_usd, created_at FROM usage WHERE id > ? ORDER BY id",
        (after_id,),
    ).fetchall()
    return [UsageRow(*r) for r in rows]
