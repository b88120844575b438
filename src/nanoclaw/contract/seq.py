"""Sequence parity (invariant 3): host rows carry even seq, runner rows odd; unique per session."""

from __future__ import annotations


def next_host_seq(max_inbound_seq: int | None) -> int:
    """The next even seq above every ``messages_in`` row (minimum 2)."""
    current = max_inbound_seq or 0
    return current + 2 if current % 2 == 0 else current + 1


def next_runner_seq(max_seq_both_tables: int | None) -> int:
    """The next odd seq above the given seq: the runner passes the highest of ``messages_out``
    and of the ``messages_in`` rows its turn saw, so a reply sorts after what it answers."""
    current = max_seq_both_tables or 0
    return current + 1 if current % 2 == 0 else current + 2


def table_for_seq(seq: int) -> str:
    """Parity tells which table a seq lives in."""
    return "messages_in" if seq % 2 == 0 else "messages_out"
