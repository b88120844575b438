"""Compose the system prompt from memory files, destinations, time zone and the assistant's name."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from agent_runner.rows import Destination
from nanoclaw.contract.skills import SKILL_FILE, SKILLS_DIR, list_skills

MEMORY_FILES = ("CLAUDE.md", "CLAUDE.local.md")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def compose_system_prompt(
    *,
    assistant_name: str,
    timezone: str,
    global_dir: Path,
    group_dir: Path,
    destinations: Sequence[Destination],
) -> str:
    parts = [f"# You are {assistant_name}"]
    global_memory = _read(global_dir / "CLAUDE.md")
    if global_memory:
        parts.append("## Shared instructions (read-only)\n" + global_memory)
    for name in MEMORY_FILES:
        text = _read(group_dir / name)
        if text:
            parts.append(f"## Your memory ({name}, in {group_dir})\n" + text)
    if destinations:
        listed = "\n".join(
            f"- {d.name}" + (f" ({d.display_name})" if d.display_name else "") for d in destinations
        )
        parts.append("## Destinations you can message\n" + listed)
    parts.append(skills_section(group_dir=group_dir, global_dir=global_dir))
    parts.append(
        "## Memory\n"
        f"Your memory files are {group_dir / 'CLAUDE.md'} (what you should always know) and"
        f" {group_dir / 'CLAUDE.local.md'} (your standing instructions). To remember something"
        " for later conversations, edit them with the text editor tool; what you write is part"
        " of this prompt from your next turn and in every later session of this agent."
        f" {global_dir / 'CLAUDE.md'} is shared by all agents and read-only."
    )
    parts.append(
        "## Output rules\n"
        f"The user's time zone is {timezone}. Your final text is sent to the chat the message came"
        ' from. To write elsewhere, wrap text in <message to="name">…</message> (several blocks are'
        " allowed). Anything inside <internal>…</internal> is never sent."
    )
    return "\n\n".join(parts)


def skills_section(*, group_dir: Path, global_dir: Path) -> str:
    """Each skill's name, description and path: the agent reads the rest only when it needs it."""
    skills = list_skills(group_dir / SKILLS_DIR, global_dir / SKILLS_DIR)
    how = (
        f"To add a skill for yourself, create {group_dir / SKILLS_DIR}/<name>/{SKILL_FILE} starting"
        " with front matter (---, name: …, description: …, ---) followed by the instructions."
    )
    if not skills:
        return f"## Skills\nNo skills yet. {how}"
    listed = "\n".join(
        f"- {s.name}: {s.description} ({s.folder / SKILL_FILE}{', shared' if s.shared else ''})"
        for s in skills
    )
    return (
        "## Skills\nA skill is a folder of instructions and files for one kind of task. When a"
        f" task matches a skill, first read its {SKILL_FILE} with the text editor (view), then"
        " any files it names; do not read skills you do not need.\n"
        f"{listed}\n{how}"
    )
