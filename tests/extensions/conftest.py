"""Extension tests: the agent fixtures (a host with the fake model API) and the CLI on fresh data."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from nanoclaw.cli.app import _State
from nanoclaw.settings import Settings
from tests.agent.conftest import agent_host  # noqa: F401


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A CLI runner whose commands read this test's data and groups folders (no .env)."""
    monkeypatch.setenv("NANOCLAW_ENV_FILE", "")
    monkeypatch.setenv("NANOCLAW_DATA_DIR", str(settings.data_path))
    monkeypatch.setenv("NANOCLAW_GROUPS_DIR", str(settings.groups_path))
    monkeypatch.setattr(_State, "settings", None)  # the CLI caches its settings per process
    return CliRunner()
