"""The heartbeat file: its mtime tells the host the runner is alive and making progress."""

from __future__ import annotations

import os
import time
from pathlib import Path

MIN_TOUCH_INTERVAL_S = 0.25  # touching more often adds syscalls and tells the host nothing new


class Heartbeat:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._last = 0.0

    def touch(self) -> None:
        now = time.monotonic()
        if now - self._last < MIN_TOUCH_INTERVAL_S:
            return
        self._last = now
        try:
            os.utime(self.path)
        except FileNotFoundError:
            self.path.touch()
