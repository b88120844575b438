"""Shared fixtures: a clean environment, fresh settings under a temporary root, a running host."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from nanoclaw.channels.cli.backlog import CliBacklog
from nanoclaw.db.central import CentralDB
from nanoclaw.settings import Settings
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import FakeTelegram

REPO_ROOT = Path(__file__).resolve().parents[1]
SECRET_PREFIXES = ("NANOCLAW_", "ANTHROPIC_", "SLACK_", "TELEGRAM_")


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's credentials or settings."""
    for key in list(os.environ):
        if key.startswith(SECRET_PREFIXES):
            monkeypatch.delenv(key, raising=False)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short path for Unix sockets (their paths are limited to ~100 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="nc-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def settings(tmp_path: Path, short_dir: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        root=REPO_ROOT,
        data_dir=tmp_path / "data",
        groups_dir=tmp_path / "groups",
        logs_dir=tmp_path / "logs",
        cli_socket_path=short_dir / "cli.sock",
        runtime="process",
        allow_process_runtime=True,
        timezone="UTC",
        idle_timeout_s=300,
    )


@pytest.fixture
async def host(settings: Settings) -> AsyncIterator[object]:
    from nanoclaw.host import build_host

    instance = build_host(settings)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeAnthropic]:
    fake = FakeAnthropic()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
def cli_backlog(tmp_path: Path) -> Iterator[CliBacklog]:
    """The terminal channel's durable backlog on a fresh, migrated central DB."""
    db = CentralDB(path=tmp_path / "central.db", migrations_root=REPO_ROOT / "migrations")
    db.migrate()
    try:
        yield CliBacklog(db=db)
    finally:
        db.dispose()


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    """A fake Slack (Web API and Socket Mode) on loopback, for one test."""
    fake = FakeSlack()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    """A fake Telegram Bot API on loopback, for one test."""
    fake = FakeTelegram()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
