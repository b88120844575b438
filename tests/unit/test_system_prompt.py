"""The runner's system prompt: composed again whenever a file it reads changed, read once otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
from agent_runner import memory
from agent_runner.memory import RACY_WINDOW_NS, SystemPrompt

from nanoclaw.contract.sessiondb import Destination


class Clock:
    def __init__(self) -> None:
        self.now_ns = 0

    def __call__(self) -> int:
        return self.now_ns


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    group, shared = tmp_path / "andy", tmp_path / "global"
    group.mkdir()
    shared.mkdir()
    return group, shared


def prompt_of(group: Path, shared: Path, clock: Clock) -> SystemPrompt:
    return SystemPrompt(
        assistant_name="Andy", timezone="UTC", global_dir=shared, group_dir=group, clock_ns=clock
    )


def age(path: Path, clock: Clock) -> None:
    """The clock moves past the racy window of every change so far."""
    clock.now_ns = max(clock.now_ns, path.stat().st_ctime_ns) + RACY_WINDOW_NS + 1


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    reads: list[Path] = []
    real = memory._read

    def recording(path: Path) -> str:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(memory, "_read", recording)
    return reads


def test_an_unchanged_prompt_reads_no_file_and_an_edit_shows_next_turn(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    group, shared = dirs
    clock = Clock()
    (group / "CLAUDE.md").write_text("likes tea")
    age(group / "CLAUDE.md", clock)
    prompt = prompt_of(group, shared, clock)
    reads = count_reads(monkeypatch)
    assert "likes tea" in prompt.compose([])
    first = len(reads)
    assert first > 0
    assert "likes tea" in prompt.compose([])
    assert len(reads) == first  # nothing changed: no file was read
    (group / "CLAUDE.md").write_text("likes tee")  # same size, within the same second
    assert "likes tee" in prompt.compose([])
    (group / "CLAUDE.local.md").write_text("be brief")
    assert "be brief" in prompt.compose([])
    new = Destination("ops", None, "channel", "fake", "ops-room", None)
    assert "- ops" in prompt.compose([new])


@pytest.mark.parametrize(("composed_after_ns", "seen"), [(0, "v2"), (RACY_WINDOW_NS + 1, "v1")])
def test_a_prompt_composed_within_the_racy_window_is_composed_again(
    dirs: tuple[Path, Path], composed_after_ns: int, seen: str
) -> None:
    group, shared = dirs
    (group / "CLAUDE.md").write_text("v1")
    frozen = memory._stamp(group / "CLAUDE.md")
    assert frozen is not None

    def coarse(path: Path) -> tuple[int, int, int, int] | None:
        # A coarse clock: the rewrite below keeps every timestamp, and the size is the same.
        return frozen if path == group / "CLAUDE.md" else memory._stamp(path)

    clock = Clock()
    clock.now_ns = frozen[3] + composed_after_ns
    prompt = SystemPrompt(
        assistant_name="Andy",
        timezone="UTC",
        global_dir=shared,
        group_dir=group,
        clock_ns=clock,
        stamp=coarse,
    )
    assert "v1" in prompt.compose([])
    (group / "CLAUDE.md").write_text("v2")
    # Composed in the file's own tick, the prompt was not kept: the edit shows. Composed
    # well after the file's last change, it was kept, and a change no stat can see (which
    # the window rules out) would not show.
    assert seen in prompt.compose([])


def test_a_new_or_edited_skill_is_listed_next_turn(dirs: tuple[Path, Path]) -> None:
    group, shared = dirs
    clock = Clock()
    prompt = prompt_of(group, shared, clock)
    age(group, clock)
    assert "No skills yet" in prompt.compose([])
    skill = group / "skills" / "brew"
    skill.mkdir(parents=True)
    (skill / "SKILL.md").write_text("---\nname: brew\ndescription: makes tea\n---\nsteps\n")
    age(skill / "SKILL.md", clock)
    assert "- brew: makes tea" in prompt.compose([])
    (skill / "SKILL.md").write_text("---\nname: brew\ndescription: makes tee\n---\nsteps\n")
    age(skill / "SKILL.md", clock)
    assert "- brew: makes tee" in prompt.compose([])
