"""A program in a real pseudo-terminal, its output read through a terminal emulator (pyte)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import pexpect
import pyte


class PtyScreen:
    """Spawn ``argv`` in a pty; ``wait_for`` polls what a person would see on the screen."""

    def __init__(
        self, argv: Sequence[str], *, env: dict[str, str], rows: int = 50, cols: int = 100
    ) -> None:
        self.child = pexpect.spawn(
            argv[0], list(argv[1:]), env=env, dimensions=(rows, cols), encoding="utf-8"
        )
        self.screen = pyte.HistoryScreen(cols, rows, history=5000)
        self.stream = pyte.Stream(self.screen)
        self.raw = ""
        self.ended = False

    def _pump(self, wait_s: float) -> None:
        if self.ended:
            time.sleep(wait_s)
            return
        try:
            data = self.child.read_nonblocking(65536, timeout=wait_s)
        except pexpect.TIMEOUT:
            return
        except pexpect.EOF:
            self.ended = True
            return
        self.raw += data
        self.stream.feed(data)

    def lines(self) -> list[str]:
        """Every line shown so far: the scrolled-off history, then the visible screen."""
        history = [
            "".join(line[x].data for x in sorted(line)).rstrip() for line in self.screen.history.top
        ]
        return history + [line.rstrip() for line in self.screen.display]

    def text(self) -> str:
        return "\n".join(self.lines())

    def wait_for(self, needle: str, *, within_s: float = 30.0) -> None:
        deadline = time.monotonic() + within_s
        while needle not in self.text():
            if time.monotonic() > deadline or self.ended:
                raise AssertionError(f"{needle!r} not on screen:\n{self.text()}")
            self._pump(0.05)

    def wait_until(self, predicate: Callable[[list[str]], bool], *, within_s: float = 30.0) -> None:
        """Wait until ``predicate(lines)`` holds for what is on the screen."""
        deadline = time.monotonic() + within_s
        while not predicate(self.lines()):
            if time.monotonic() > deadline or self.ended:
                raise AssertionError(f"screen never matched:\n{self.text()}")
            self._pump(0.05)

    def settle(self) -> None:
        """Read what is already written (no waiting for anything in particular)."""
        self._pump(0.05)

    def send(self, keys: str) -> None:
        self.child.send(keys)

    def wait_exit(self, *, within_s: float = 30.0) -> int:
        deadline = time.monotonic() + within_s
        while not self.ended:
            assert time.monotonic() < deadline, f"still running:\n{self.text()}"
            self._pump(0.1)
        self.child.close()
        status = self.child.exitstatus
        assert status is not None, f"killed by signal {self.child.signalstatus}"
        return int(status)

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)
