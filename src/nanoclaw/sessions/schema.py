"""SQLAlchemy views of the session-DB tables, reflected from the contract's DDL.

The schema itself (DDL, versions, parity CHECKs) is owned by
:mod:`nanoclaw.contract.sessiondb`; these ``Table`` objects only let host code build queries,
and are built from the columns of a scratch in-memory database made by the contract's own steps,
so they cannot drift from it.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text
from sqlalchemy.types import TypeEngine

from nanoclaw.contract import sessiondb
from nanoclaw.contract.sessiondb import SessionFile

INBOUND_KINDS = ("chat", "task", "webhook", "system")
INBOUND_STATUSES = tuple(s.value for s in sessiondb.InboundStatus)


_TYPES: dict[str, type[TypeEngine[Any]]] = {
    "INTEGER": Integer,
    "TEXT": Text,
    "FLOAT": Float,
    "VARCHAR": String,
}


def _reflect(file: SessionFile) -> MetaData:
    """Tables with the contract's columns, read from ``PRAGMA table_info`` of a scratch DB."""
    metadata = MetaData()
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        for step in sessiondb.STEPS[file]:
            for statement in step:
                conn.execute(statement)
        names = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        ).fetchall()
        for (name,) in names:
            columns = []
            for _cid, column, declared, notnull, _default, pk in conn.execute(
                f'PRAGMA table_info("{name}")'
            ):
                base = str(declared).split("(")[0].upper()
                columns.append(
                    Column(column, _TYPES[base](), primary_key=bool(pk), nullable=not notnull)
                )
            Table(name, metadata, *columns)
    finally:
        conn.close()
    return metadata


inbound_metadata = _reflect(SessionFile.INBOUND)
outbound_metadata = _reflect(SessionFile.OUTBOUND)

messages_in: Table = inbound_metadata.tables["messages_in"]
delivered: Table = inbound_metadata.tables["delivered"]
destinations: Table = inbound_metadata.tables["destinations"]
session_routing: Table = inbound_metadata.tables["session_routing"]

messages_out: Table = outbound_metadata.tables["messages_out"]
processing_ack: Table = outbound_metadata.tables["processing_ack"]
session_state: Table = outbound_metadata.tables["session_state"]
runner_state: Table = outbound_metadata.tables["runner_state"]
transcript: Table = outbound_metadata.tables["transcript"]
usage: Table = outbound_metadata.tables["usage"]
