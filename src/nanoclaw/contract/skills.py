"""Skills: ``SKILL.md`` folders (front matter ``name`` and ``description``) an agent reads when needed.

Shared by the host (``nanoclaw agents skills list``) and the runner (the system prompt lists each
skill's name, description and path; the agent opens the full text and files only when it needs
them). Links are not followed and only a bounded head of each ``SKILL.md`` is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SKILL_FILE = "SKILL.md"
SKILLS_DIR = "skills"
MAX_SKILLS_LISTED = 100
HEADER_READ_BYTES = 8192


@dataclass(frozen=True)
class Skill:
    name: str
    description: str
    folder: Path
    shared: bool


_FRONT = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.S)


def read_skill_header(text: str) -> tuple[str, str] | None:
    """``name`` and ``description`` from a SKILL.md's front matter, or None when missing."""
    match = _FRONT.match(text)
    if match is None:
        return None
    fields: dict[str, str] = {}
    for line in match.group(1).splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip().lower()] = value.strip().strip("'\"")
    name, description = fields.get("name", ""), fields.get("description", "")
    if not name or not description:
        return None
    return name[:64], description[:1024]


def list_skills(own: Path, shared: Path) -> list[Skill]:
    """Skill folders under the agent's ``skills/`` and the shared ``groups/global/skills/``."""
    found: list[Skill] = []
    for root, is_shared in ((own, False), (shared, True)):
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
            skill_md = folder / SKILL_FILE
            if skill_md.is_symlink() or not skill_md.is_file():
                continue
            try:
                header = read_skill_header(
                    skill_md.read_text(encoding="utf-8", errors="replace")[:HEADER_READ_BYTES]
                )
            except OSError:
                continue
            if header is not None:
                found.append(Skill(header[0], header[1], folder, is_shared))
            if len(found) >= MAX_SKILLS_LISTED:
                return found
    return found
