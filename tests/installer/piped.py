"""Installer and CLI commands run with their output in one text pipe, read line by line."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import REPO_ROOT
from tests.installer.conftest import Install


def spawn(argv: list[str], install: Install) -> subprocess.Popen[str]:
    """Start one installer/CLI command with its output merged into one text pipe."""
    return subprocess.Popen(
        argv,
        cwd=REPO_ROOT,
        env=install.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def read_until(proc: subprocess.Popen[str], seen: list[str], pattern: re.Pattern[str]) -> str:
    """Read lines into ``seen`` until one matches; the match's first group, or fail with the output."""
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        assert line, "".join(seen)
        sys.stdout.write(line)
        seen.append(line)
        found = pattern.search(line)
        if found:
            return found.group(1) if pattern.groups else found.group(0)
