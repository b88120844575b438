"""The end-to-end check: a message through the running host to a temporary agent, then cleaned up.

A scratch agent and a scratch terminal chat are created for the check and deleted afterwards,
with their folders and session files, so no user agent's memory or transcript ever holds the
check. The host stops the scratch runner once its session row is gone (the supervisor's idle
pass). A reply marked ``failure`` on its frame, a notice instead of an answer, and a timeout all
fail the check.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
from dataclasses import dataclass

from nanoclaw.admin.bootstrap import CLAUDE_MD_TEMPLATE, operator_handle
from nanoclaw.admin.store import AdminStore
from nanoclaw.channels.cli.client import NoReplyError, NotDeliveredError, send_once
from nanoclaw.db.central import CentralDB
from nanoclaw.db.repository import Repository
from nanoclaw.errors import NanoclawError, NotFoundError
from nanoclaw.settings import Settings

CHECK_PREFIX = "setup-check-"
CHECK_TEXT = "This is NanoClaw's setup check. Reply with one short sentence."


@dataclass(frozen=True)
class E2EResult:
    ok: bool
    detail: str  # the reply's text, or why there was none


def _create(settings: Settings, name: str) -> tuple[str, str]:
    db = CentralDB(path=settings.central_db_path, migrations_root=settings.migrations_path)
    try:
        db.migrate()
        repo = Repository(db)
        group = repo.create_agent_group(name=name, folder=name, assistant_name="Setup check")
        folder = settings.groups_path / group.folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "CLAUDE.md").write_text(CLAUDE_MD_TEMPLATE.format(name="Setup check"))
        mg = repo.ensure_messaging_group(
            channel_type="cli", platform_id=name, name=name, unknown_sender_policy="public"
        )
        repo.create_wiring(
            messaging_group_id=mg.id,
            agent_group_id=group.id,
            engage_pattern=".",
            engage_mode="pattern",
        )
        return group.id, mg.id
    finally:
        db.dispose()


def remove_check_agents(settings: Settings) -> list[str]:
    """Delete every scratch agent and chat (this run's, and any a killed run left behind)."""
    db = CentralDB(path=settings.central_db_path, migrations_root=settings.migrations_path)
    removed: list[str] = []
    try:
        db.migrate()
        repo = Repository(db)
        store = AdminStore(db)
        for mg in repo.messaging_groups():
            if mg.channel_type == "cli" and mg.platform_id.startswith(CHECK_PREFIX):
                with contextlib.suppress(NotFoundError):
                    store.delete_messaging_group(mg.id)
        for group in repo.agent_groups():
            if not group.folder.startswith(CHECK_PREFIX):
                continue
            with contextlib.suppress(NotFoundError):
                store.delete_agent_group(group.id)
            shutil.rmtree(settings.groups_path / group.folder, ignore_errors=True)
            shutil.rmtree(settings.sessions_path / group.folder, ignore_errors=True)
            removed.append(group.folder)
    finally:
        db.dispose()
    return removed


def end_to_end_check(settings: Settings, *, timeout_s: float) -> E2EResult:
    name = CHECK_PREFIX + secrets.token_hex(3)
    try:
        _create(settings, name)
        exchange = asyncio.run(
            send_once(
                settings.cli_socket,
                chat=name,
                sender=operator_handle(),
                text=CHECK_TEXT,
                timeout_s=timeout_s,
            )
        )
    except NoReplyError:
        return E2EResult(False, f"no answer within {timeout_s:g} s (see `nanoclaw logs`)")
    except NotDeliveredError as exc:
        return E2EResult(False, f"the host answered with a notice: {exc} ({exc.reason})")
    except NanoclawError as exc:
        return E2EResult(False, str(exc))
    finally:
        remove_check_agents(settings)
    failed = [r for r in exchange.replies if r.get("failure")]
    if failed or exchange.failed:
        shown = failed[0] if failed else (exchange.replies[-1] if exchange.replies else {})
        why = shown.get("failure_detail") or shown.get("text") or "the turn ended failed"
        return E2EResult(False, str(why))
    if not exchange.replies:
        return E2EResult(False, "the turn finished without a reply")
    return E2EResult(True, " ".join(str(r.get("text", "")) for r in exchange.replies))
