"""Kernel-level names for the host's worker threads, so ``top -H``, ``/proc`` and profilers tell them apart."""

from __future__ import annotations

import ctypes
import sys

PR_SET_NAME = 15  # prctl(2) option: the calling thread's name, 15 bytes and a NUL
OS_THREAD_NAME_MAX_BYTES = 15


def name_os_thread(name: str) -> None:
    """Give the calling thread ``name`` (truncated to 15 bytes) for the kernel; Linux only.

    Python names its threads only for itself, so every thread otherwise shows the process's
    name. A failure is ignored: the name is for people and benchmarks, nothing depends on it.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_NAME, name.encode()[:OS_THREAD_NAME_MAX_BYTES], 0, 0, 0)
    except (OSError, AttributeError):
        return
