"""Questions on the terminal; without one, ``Prompter(interactive=False)`` refuses to ask."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from nanoclaw.errors import NanoclawError


class NoTerminalError(NanoclawError):
    """A question needed an answer and there is no terminal: pass it as a flag or variable."""


class Prompter:
    def __init__(
        self, *, interactive: bool, out: TextIO | None = None, inp: TextIO | None = None
    ) -> None:
        self.interactive = interactive
        self.out = out or sys.stdout
        self.inp = inp or sys.stdin

    def _line(self, question: str) -> str:
        if not self.interactive:
            raise NoTerminalError(f"no terminal to ask: {question}")
        self.out.write(question)
        self.out.flush()
        line = self.inp.readline()
        if not line:
            raise KeyboardInterrupt
        return line.strip()

    def ask(
        self,
        question: str,
        *,
        default: str | None = None,
        check: Callable[[str], str | None] | None = None,
    ) -> str:
        """Ask until ``check`` (returning an error text, or None) accepts the answer."""
        suffix = f" [{default}]" if default else ""
        while True:
            answer = self._line(f"    {question}{suffix}: ") or (default or "")
            if not answer:
                self.out.write("      (an answer is needed)\n")
                continue
            problem = check(answer) if check else None
            if problem is None:
                return answer
            self.out.write(f"      {problem}\n")

    def secret(self, question: str) -> str:
        if not self.interactive:
            raise NoTerminalError(f"no terminal to ask: {question}")
        while True:
            value = getpass.getpass(f"    {question} (hidden): ").strip()
            if value:
                return value
            self.out.write("      (an answer is needed)\n")

    def confirm(self, question: str, *, default: bool = True) -> bool:
        hint = "Y/n" if default else "y/N"
        while True:
            answer = self._line(f"    {question} [{hint}]: ").lower()
            if not answer:
                return default
            if answer in ("y", "yes"):
                return True
            if answer in ("n", "no"):
                return False

    def choose(self, question: str, options: Sequence[tuple[str, str]], *, default: str) -> str:
        """Numbered options ``(key, label)``; returns the chosen key."""
        self.out.write(f"    {question}\n")
        keys = [key for key, _ in options]
        for number, (_key, label) in enumerate(options, 1):
            self.out.write(f"      {number}) {label}\n")
        default_number = str(keys.index(default) + 1)
        while True:
            answer = (
                self._line(f"    Choose 1-{len(options)} [{default_number}]: ") or default_number
            )
            if answer.isdigit() and 1 <= int(answer) <= len(options):
                return keys[int(answer) - 1]
            if answer in keys:
                return answer
