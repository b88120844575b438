"""Compose the system prompt from memory files, destinations, time zone and the assistant's name."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent_runner.rows import Destination
from nanoclaw.contract.skills import SKILL_FILE, SKILLS_DIR, list_skills

MEMORY_FILES = ("CLAUDE.md", "CLAUDE.local.md")
# A file changed this recently may change again within one tick of its coarse timestamp with
# the same size, unseen by a stat: a prompt that read such a file is composed again next turn.
RACY_WINDOW_NS = 2_000_000_000

# (inode, size, mtime, ctime) of an entry, or None when it is absent or unreadable.
_Stamp = tuple[int, int, int, int] | None


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


def _stamp(path: Path) -> _Stamp:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(frozen=True)
class _Composed:
    inputs: tuple[tuple[str, _Stamp], ...]
    destinations: tuple[Destination, ...]
    text: str


class SystemPrompt:
    """:func:`compose_system_prompt` for one runner, composed again only when a file it reads
    (memory files, skill folders and their ``SKILL.md``) or the destinations changed; a turn
    otherwise costs one ``stat`` per file instead of reading them all."""

    def __init__(
        self,
        *,
        assistant_name: str,
        timezone: str,
        global_dir: Path,
        group_dir: Path,
        clock_ns: Callable[[], int] = time.time_ns,
        stamp: Callable[[Path], _Stamp] = _stamp,
    ) -> None:
        self.assistant_name = assistant_name
        self.timezone = timezone
        self.global_dir = global_dir
        self.group_dir = group_dir
        self._clock_ns = clock_ns
        self._stamp = stamp
        self._last: _Composed | None = None

    def compose(self, destinations: Sequence[Destination]) -> str:
        inputs = self._inputs()
        wanted = tuple(destinations)
        last = self._last
        if last is not None and last.inputs == inputs and last.destinations == wanted:
            return last.text
        composed_at_ns = self._clock_ns()
        text = compose_system_prompt(
            assistant_name=self.assistant_name,
            timezone=self.timezone,
            global_dir=self.global_dir,
            group_dir=self.group_dir,
            destinations=wanted,
        )
        racy = any(
            composed_at_ns - stamp[3] < RACY_WINDOW_NS for _, stamp in inputs if stamp is not None
        )
        self._last = None if racy else _Composed(inputs, wanted, text)
        return text

    def _inputs(self) -> tuple[tuple[str, _Stamp], ...]:
        """Every entry the prompt is composed from, with its stamp (stat'd before any read)."""
        paths = [self.global_dir / "CLAUDE.md", *(self.group_dir / n for n in MEMORY_FILES)]
        for root in (self.group_dir / SKILLS_DIR, self.global_dir / SKILLS_DIR):
            paths.append(root)
            try:
                folders = sorted(e.name for e in os.scandir(root))
            except OSError:
                continue
            for name in folders:
                paths.append(root / name)  # a folder renamed or replaced changes its stamp
                paths.append(root / name / SKILL_FILE)
        return tuple((str(path), self._stamp(path)) for path in paths)
