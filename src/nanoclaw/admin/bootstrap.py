"""First-run setup: the first agent group, its memory folder, and the local CLI chat wired to it."""

from __future__ import annotations

import getpass
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from nanoclaw.contract.confined import ensure_file, read_file, replace_file
from nanoclaw.db.central import CentralDB
from nanoclaw.db.repository import Repository
from nanoclaw.errors import SandboxFileError
from nanoclaw.settings import Settings

log = logging.getLogger("nanoclaw.admin.bootstrap")

DEFAULT_CHAT = "local"

CLAUDE_MD_TEMPLATE = """# {name}

You are {name}, a personal assistant. You talk with your user through chat apps.
Keep answers short and useful. Write down lasting facts about the user in CLAUDE.local.md.
"""

# The base instructions every agent reads: committed at groups/global/CLAUDE.md in the checkout.
GLOBAL_MD_RELATIVE = Path("groups") / "global" / "CLAUDE.md"
OWNER_LINE = "The person you work for is called {name}."


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


def ensure_memory_file(groups_path: Path, folder: str, name: str, text: str) -> None:
    """Create a group's memory file unless present, through the groups folder's descriptor.

    The group folder is writable by its sandbox: a planted symlink (dangling or not) is
    refused and logged, never followed, so root never writes where an agent points.
    """
    try:
        ensure_file(groups_path, folder, name, data=text.encode("utf-8"))
    except SandboxFileError as exc:
        log.warning("left %s/%s alone: %s", folder, name, exc)


def ensure_global_instructions(settings: Settings) -> Path:
    """``<groups>/global/CLAUDE.md``: the committed file itself, or a copy of it in another groups dir.

    An installed wheel without the checkout gets an empty file rather than invented text.
    """
    committed = settings.root / GLOBAL_MD_RELATIVE
    text = committed.read_text(encoding="utf-8") if committed.is_file() else ""
    settings.groups_path.mkdir(parents=True, exist_ok=True)
    ensure_memory_file(settings.groups_path, "global", "CLAUDE.md", text)
    return settings.groups_path / "global" / "CLAUDE.md"


def note_owner(groups_path: Path, folder: str, owner_name: str) -> None:
    """Tell the agent its owner's name in its own memory (replacing an earlier such line).

    Read and replaced through the group folder's descriptor: the folder is sandbox-writable.
    """
    prefix = OWNER_LINE.split("{", 1)[0]
    try:
        old = read_file(groups_path, folder, "CLAUDE.local.md").decode("utf-8", "replace")
        lines = [ln for ln in old.splitlines() if not ln.startswith(prefix)]
        text = "\n".join([OWNER_LINE.format(name=owner_name), *lines]).rstrip() + "\n"
        replace_file(groups_path, folder, "CLAUDE.local.md", data=text.encode("utf-8"))
    except SandboxFileError as exc:
        log.warning("left %s/CLAUDE.local.md alone: %s", folder, exc)


def initialize(
    settings: Settings, *, agent_name: str | None = None, owner_name: str | None = None
) -> InitReport:
    """Idempotent: creates only what is missing."""
    db = CentralDB(path=settings.central_db_path, migrations_root=settings.migrations_path)
    try:
        db.migrate()
        repo = Repository(db)
        ensure_global_instructions(settings)
        groups = repo.agent_groups()
        created = False
        if groups:
            group = groups[0]
        else:
            name = agent_name or settings.assistant_name
            group = repo.create_agent_group(name=name, folder=folder_for(name), assistant_name=name)
            created = True
        ensure_memory_file(
            settings.groups_path,
            group.folder,
            "CLAUDE.md",
            CLAUDE_MD_TEMPLATE.format(name=group.name),
        )
        ensure_memory_file(settings.groups_path, group.folder, "CLAUDE.local.md", "")
        if owner_name:
            note_owner(settings.groups_path, group.folder, owner_name)

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
            repo.upsert_user(owner, kind="cli", display_name=owner_name or operator_handle())
            repo.grant_role(owner, "owner", granted_by="setup")
            # The owner's DM agent reads everything; writes still need the owner's own role.
            repo.set_admin_scope(group.id, "global")
        elif owner_name:
            repo.upsert_user(f"cli:{operator_handle()}", kind="cli", display_name=owner_name)
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
