"""Where the host's threads run: its Python threads share one CPU, what it starts gets them all.

The host is one process whose Python threads (event loop, session lanes, central DB) hand each
other work many times per message and take turns at the GIL. Spread over several CPUs, every
hand-over wakes a thread on another CPU (an inter-processor interrupt, costly under a
hypervisor) and the threads convoy on the GIL; on one CPU the same hand-overs are plain
switches. ``nanoclaw run`` therefore pins its event-loop thread to one CPU of those it may use
before it builds the host (:func:`pin_host_threads`). Each executor pool sets its threads' CPUs
as they start, whoever started them: the central and session pools pin them to that CPU
(:func:`pin_calling_thread`), the blocking pool (Docker calls, subprocesses, file copies) gives
them every CPU the host started with (:func:`unpin_calling_thread`). Other threads inherit
their creator's mask, as Linux does. Each runner is spawned inside :func:`children_unpinned`,
so runners and their tools use every CPU. Measured in ``docs/performance.md`` (round nine).

Affinity is per-thread kernel state, so the set the host started with is kept here, once, by
:func:`pin_host_threads`; with no pin (other platforms, one CPU, ``NANOCLAW_HOST_CPU_PIN=0``,
in-process tests) every function here does nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass

log = logging.getLogger("nanoclaw.cpu_affinity")


@dataclass(frozen=True)
class HostPin:
    """The CPU the host's Python threads run on, and the set it started with (for children)."""

    cpu: int
    started_with: frozenset[int]


_pin: HostPin | None = None


def _supported() -> bool:
    return hasattr(os, "sched_setaffinity") and hasattr(os, "sched_getaffinity")


def pin_host_threads(*, enabled: bool, cpu: int | None = None) -> HostPin | None:
    """Pin the calling thread (``nanoclaw run``'s event loop, before any other thread starts)
    to ``cpu``, by default the highest-numbered CPU it may use; None when off, unsupported or
    only one CPU. The session-DB write worker passes the CPU it was given (a different one)."""
    global _pin
    if not enabled or not _supported():
        return None
    allowed = frozenset(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None
    if cpu is None or cpu not in allowed:
        cpu = max(allowed)
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as exc:  # a container or policy that forbids it: run unpinned
        log.info("host threads not pinned (%s)", exc)
        return None
    _pin = HostPin(cpu=cpu, started_with=allowed)
    log.info(
        "host threads pinned to CPU %d of %s; runners use them all (NANOCLAW_HOST_CPU_PIN=0: off)",
        cpu,
        ",".join(str(c) for c in sorted(allowed)),
    )
    return _pin


def usable_cpus() -> int:
    """How many CPUs the host may use (the set it started with, when pinned)."""
    if _pin is not None:
        return len(_pin.started_with)
    if _supported():
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def spare_cpu() -> int | None:
    """The lowest CPU other than the host's, for the session-DB write worker to pin itself
    to; None without a pin."""
    if _pin is None:
        return None
    others = sorted(_pin.started_with - {_pin.cpu})
    return others[0] if others else None


def pin_calling_thread() -> None:
    """Put the calling thread on the host's CPU: a pool thread started while the loop thread
    was widened for a spawn (:func:`children_unpinned`) would otherwise keep every CPU."""
    if _pin is not None:
        _widen(frozenset({_pin.cpu}))


def unpin_calling_thread() -> None:
    """Give the calling thread (and what it starts from now on) the host's original CPU set."""
    if _pin is not None:
        _widen(_pin.started_with)


class _Widened(threading.local):
    """Per thread: how many :func:`children_unpinned` blocks are open, and the set before."""

    depth = 0
    before: frozenset[int] = frozenset()


_widened = _Widened()


@contextlib.contextmanager
def children_unpinned() -> Iterator[None]:
    """Around a spawn on a pinned thread: the child inherits the original set, not the pin.

    Spawns awaited on the event loop overlap (each block spans its ``await``), so the blocks
    open on one thread are counted: the first saves the thread's set, the last restores it.
    """
    pin = _pin
    if pin is None:
        yield
        return
    state = _widened
    if state.depth == 0:
        state.before = frozenset(os.sched_getaffinity(0))
        _widen(pin.started_with)
    state.depth += 1
    try:
        yield
    finally:
        state.depth -= 1
        if state.depth == 0:
            _widen(state.before)


def _widen(cpus: frozenset[int]) -> None:
    try:
        os.sched_setaffinity(0, cpus)
    except OSError as exc:  # the set changed under us (a cpuset update): keep what we have
        log.debug("could not set this thread's CPUs to %s: %s", sorted(cpus), exc)
