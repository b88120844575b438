"""Runner start-up: read the config, check the schema, pick the provider, run the poll loop."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from agent_runner.db import SchemaMismatchError, SessionDB
from agent_runner.heartbeat import Heartbeat
from agent_runner.poll import PollLoop
from agent_runner.providers.base import Provider
from agent_runner.providers.mock import MockProvider
from nanoclaw.contract.layout import SessionLayout
from nanoclaw.contract.runner_config import (
    CONTAINER_GLOBAL_DIR,
    CONTAINER_GROUP_DIR,
    CONTAINER_SESSION_DIR,
    ENV_GLOBAL_DIR,
    ENV_GROUP_DIR,
    ENV_SESSION_DIR,
    RunnerConfig,
)

EXIT_SCHEMA_MISMATCH = 3
EXIT_BAD_CONFIG = 4


def make_provider(config: RunnerConfig) -> Provider:
    if config.provider == "anthropic":
        from agent_runner.providers.anthropic import (
            AnthropicProvider,
        )  # heavy import, only when used

        return AnthropicProvider.from_config(config)
    return MockProvider(assistant_name=config.assistant_name)


async def _run(loop_: PollLoop) -> None:
    running = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        running.add_signal_handler(sig, loop_.stopping.set)
    try:
        await loop_.run()
    finally:
        await loop_.provider.aclose()


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s runner %(levelname)s %(message)s"
    )
    session_dir = Path(os.environ.get(ENV_SESSION_DIR, CONTAINER_SESSION_DIR))
    group_dir = Path(os.environ.get(ENV_GROUP_DIR, CONTAINER_GROUP_DIR))
    global_dir = Path(os.environ.get(ENV_GLOBAL_DIR, CONTAINER_GLOBAL_DIR))
    layout = SessionLayout(session_dir)
    try:
        config = RunnerConfig.read(layout.runner_config)
    except (OSError, ValueError, TypeError) as exc:
        logging.error("cannot read %s: %s", layout.runner_config, exc)
        return EXIT_BAD_CONFIG
    db = SessionDB(inbound_path=layout.inbound_db, outbound_path=layout.outbound_db)
    try:
        db.check_schema(inbound=config.inbound_schema, outbound=config.outbound_schema)
    except SchemaMismatchError as exc:
        logging.error("%s", exc)
        return EXIT_SCHEMA_MISMATCH
    poll = PollLoop(
        config=config,
        db=db,
        provider=make_provider(config),
        session_dir=session_dir,
        group_dir=group_dir,
        global_dir=global_dir,
        heartbeat=Heartbeat(layout.heartbeat),
    )
    logging.info("runner up for session %s (provider %s)", config.session_id, config.provider)
    asyncio.run(_run(poll))
    return 0
