"""Setup steps on screen (with elapsed time) and in ``logs/setup.log`` (which step failed, and why).

The log format follows upstream's: ``=== [<UTC>] <step> [<dur>s] → success|skipped|failed ===``
followed by ``key: value`` lines. Secrets never reach either: callers pass masked values.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TextIO

from nanoclaw.contract.timeutil import now_iso
from nanoclaw.errors import NanoclawError


class StepStatus(StrEnum):
    SUCCESS = "success"
    SKIPPED = "skipped"
    FAILED = "failed"


class StepFailedError(NanoclawError):
    """A setup step failed; ``step`` names it and ``hint`` says what to do."""

    def __init__(self, step: str, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.step = step
        self.hint = hint


@dataclass
class StepRecord:
    status: StepStatus = StepStatus.SUCCESS
    summary: str = ""
    facts: dict[str, str] = field(default_factory=dict)

    def skip(self, summary: str) -> None:
        self.status = StepStatus.SKIPPED
        self.summary = summary

    def done(self, summary: str, **facts: str) -> None:
        self.summary = summary
        self.facts.update(facts)


class Progress:
    def __init__(self, *, log_path: Path, out: TextIO | None = None) -> None:
        self.log_path = log_path
        self.out = out or sys.stdout
        color = self.out.isatty()
        self.bold, self.green, self.yellow, self.red, self.reset = (
            ("\033[1m", "\033[32m", "\033[33m", "\033[31m", "\033[0m") if color else ("",) * 5
        )
        self.started = time.monotonic()

    def log(self, line: str) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a") as handle:
            handle.write(line.rstrip("\n") + "\n")

    def say(self, text: str) -> None:
        print(f"    {text}", file=self.out, flush=True)

    def warn(self, text: str) -> None:
        print(f"    {self.yellow}!{self.reset} {text}", file=self.out, flush=True)

    @contextmanager
    def step(self, name: str, title: str) -> Iterator[StepRecord]:
        print(f"{self.bold}==>{self.reset} {title}", file=self.out, flush=True)
        record = StepRecord()
        start = time.monotonic()
        try:
            yield record
        except StepFailedError as exc:
            self._finish(name, StepStatus.FAILED, time.monotonic() - start, str(exc), exc.hint)
            raise
        except NanoclawError as exc:
            self._finish(name, StepStatus.FAILED, time.monotonic() - start, str(exc), "")
            raise StepFailedError(name, str(exc)) from exc
        except KeyboardInterrupt:
            self._finish(name, StepStatus.FAILED, time.monotonic() - start, "interrupted", "")
            raise
        duration = time.monotonic() - start
        mark = f"{self.green}✓{self.reset}" if record.status is StepStatus.SUCCESS else "-"
        print(f"    {mark} {record.summary} ({duration:.1f} s)", file=self.out, flush=True)
        self.log(f"=== [{now_iso()}] {name} [{duration:.1f}s] → {record.status.value} ===")
        for key, value in {"summary": record.summary, **record.facts}.items():
            self.log(f"{key}: {value}")

    def _finish(
        self, name: str, status: StepStatus, duration: float, message: str, hint: str
    ) -> None:
        print(
            f"    {self.red}✗{self.reset} {message} ({duration:.1f} s)", file=self.out, flush=True
        )
        if hint:
            print(f"      {hint}", file=self.out, flush=True)
        self.log(f"=== [{now_iso()}] {name} [{duration:.1f}s] → {status.value} ===")
        self.log(f"error: {message}")
        if hint:
            self.log(f"hint: {hint}")

    def elapsed_s(self) -> float:
        return time.monotonic() - self.started
