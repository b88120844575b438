"""Entry point: ``python -m agent_runner``."""

from __future__ import annotations

from agent_runner.main import main

if __name__ == "__main__":
    raise SystemExit(main())
