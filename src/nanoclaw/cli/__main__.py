"""``python -m nanoclaw.cli``."""

from __future__ import annotations

from nanoclaw.cli.app import main

main()
