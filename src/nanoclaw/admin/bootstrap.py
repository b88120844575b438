"""First-run setup: the first agent group, its memory folder, and the local CLI chat wired to it."""

from __future__ import annotations

import getpass
import re
from dataclasses import dataclass

from nanoclaw.db.central import CentralDB
from nanoclaw.db.repository import Repository
from nanoclaw.settings import Settings

DEFAULT_CHAT = "local"

CLAUDE_MD_TEMPLATE = """# {name}

You are {name}, a personal assistant. You talk with your user through chat apps.
Keep answers short and useful. Write down lasting facts about the user in CLAUDE.local.md.
"""

GLOBAL_MD = """# Shared instructions

These instructions apply to every agent on this NanoClaw install. They are read-only for agents.
"""


@dataclass(frozen=True)
class InitReport:
    agent_name: str
    agent_folder: str
    created_agent: bool
    wired_local_chat: bool
    owner_user_id: str | None
    provider: str


def folder_for(name: str) -> str:
    folder = re.sub(r"[^A-Za-z0-9_-]+", "-", name.strip().lower()).strip("-_")
    return (folder or "agent")[:64]


def operator_handle() -> str:
    try:
        user = getpass.getuser()
    except Exception:
        user = "operator"
    return re.sub(r"[^A-Za-z0-9_.@+-]", "-", user) or "operator"


def initialize(settings: Settings, *, agent_name: str | None = None) -> InitReport:
    """Idempotent: creates only what is missing."""
    db = CentralDB(path=settings.central_db_path, migrations_root=settings.migrations_path)
    try:
        db.migrate()
        repo = Repository(db)
        settings.groups_path.joinpath("global").mkdir(parents=True, exist_ok=True)
        global_md = settings.groups_path / "global" / "CLAUDE.md"
        if not global_md.exists():
            global_md.write_text(GLOBAL_MD)
        groups = repo.agent_groups()
        created = False
        if groups:
            group = groups[0]
        else:
            name = agent_name or settings.assistant_name
            group = repo.create_agent_group(name=name, folder=folder_for(name), assistant_name=name)
            created = True
        group_dir = settings.groups_path / group.folder
        group_dir.mkdir(parents=True, exist_ok=True)
        if not (group_dir / "CLAUDE.md").exists():
            (group_dir / "CLAUDE.md").write_text(CLAUDE_MD_TEMPLATE.format(name=group.name))
        (group_dir / "CLAUDE.local.md").touch(exist_ok=True)

        mg = repo.ensure_messaging_group(
            channel_type="cli",
            platform_id=DEFAULT_CHAT,
            name="local terminal",
            is_group=False,
            unknown_sender_policy="public",
        )
        wired = False
        if not repo.wirings_for(mg.id):
            repo.create_wiring(
                messaging_group_id=mg.id,
                agent_group_id=group.id,
                engage_mode="pattern",
                engage_pattern=".",
            )
            wired = True
        owner: str | None = None
        if not repo.has_owner():
            owner = f"cli:{operator_handle()}"
            repo.upsert_user(owner, kind="cli", display_name=operator_handle())
            repo.grant_role(owner, "owner", granted_by="setup")
            # The owner's DM agent reads everything; writes still need the owner's own role.
            repo.set_admin_scope(group.id, "global")
        return InitReport(
            agent_name=group.name,
            agent_folder=group.folder,
            created_agent=created,
            wired_local_chat=wired,
            owner_user_id=owner,
            provider=settings.effective_provider,
        )
    finally:
        db.dispose()
