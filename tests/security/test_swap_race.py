"""Race tests with a positive control: a sandbox swapping names as fast as it can, 1,000 host opens.

For each attack an attacker loop runs inside a real sandbox (Docker as uid 1000, bubblewrap)
with the runner's own mounts, and the host side calls the real function ``ATTEMPTS`` times:
0 leaks. The same harness pointed at a deliberately naive version (check, then use the path —
what the host did before) must leak at least once, so these tests can fail.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nanoclaw.admin.bootstrap import ensure_memory_file
from nanoclaw.contract.confined import ConfinedDir
from nanoclaw.contract.dbprobe import connect_session_db, unjam_fifos
from nanoclaw.contract.layout import SessionLayout
from nanoclaw.delivery.loop import read_outbox_files
from nanoclaw.errors import SandboxFileError, UnsafePathError
from tests.security.sandbox_attacker import bwrap_attacker, docker_attacker, make_spec

ATTEMPTS = 1000
NAIVE_ATTEMPTS_MAX = 20_000  # the naive writer and opener stop at their first leak
RACE_DEADLINE_S = 60.0  # how long a harness waits for a descheduled attacker to race again
SECRET = b"ANTHROPIC_API_KEY=sk-ant-host-secret"
MESSAGE_ID = "msg-race"
DEADLINE_S = 1.0
# 1,000 real calls against a live attacker plus a positive control: minutes on a loaded machine.
pytestmark = pytest.mark.timeout(600)


@dataclass
class Tally:
    leaks: int = 0
    refused: int = 0
    served: int = 0
    attempts: int = 0


@pytest.fixture(
    params=[
        pytest.param("docker", marks=pytest.mark.docker),
        pytest.param("bwrap", marks=pytest.mark.bwrap),
    ]
)
def sandbox(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Any]:
    """``sandbox(mode, sub_folder, host_target)``: a context running the attacker loop."""
    docker = request.param == "docker"
    if docker:
        client = request.getfixturevalue("docker_client")
        image = request.getfixturevalue("agent_image")
    else:
        request.getfixturevalue("bwrap_ready")
    spec = make_spec(tmp_path / "root", docker=docker)
    stage = tmp_path / "stage"
    stage.mkdir()

    @contextlib.contextmanager
    def run(mode: str, inside: str, host_folder: Path, target: Path) -> Iterator[Any]:
        ready = host_folder / "ready"
        if docker:
            attacker = docker_attacker(client, image, spec, mode, inside, ready, target)
        else:
            attacker = bwrap_attacker(stage, spec, mode, inside, ready, target)
        with attacker:
            yield spec

    run.spec = spec  # type: ignore[attr-defined]
    return run


def naive_outbox_read(layout: SessionLayout, message_id: str, name: str) -> bytes:
    """The pre-fix host code: check the path (no link, regular, inside), then read the path."""
    root = layout.outbox.resolve()
    candidate = layout.outbox / message_id / name
    if candidate.is_symlink() or not candidate.is_file():
        raise UnsafePathError(f"{candidate} is not a regular file", path=str(candidate))
    resolved = candidate.resolve()
    if root not in resolved.parents:
        raise UnsafePathError(f"{candidate} escapes {root}", path=str(candidate))
    return resolved.read_bytes()


def swap_race(
    read: Callable[[], bytes],
    *,
    attempts: int,
    until: Callable[[Tally], bool],
    refusals: tuple[type[Exception], ...],
) -> Tally:
    """At least ``attempts`` reads, then on until ``until(tally)`` or ``RACE_DEADLINE_S``.

    On a loaded machine the attacker can be descheduled for a while; the harness waits for
    the race to be live (a bound, not a sleep) instead of failing on a quiet stretch.
    """
    tally = Tally()
    deadline = time.monotonic() + RACE_DEADLINE_S
    while tally.attempts < attempts or (not until(tally) and time.monotonic() < deadline):
        tally.attempts += 1
        try:
            data = read()
        except refusals:
            tally.refused += 1
            continue
        if SECRET in data:
            tally.leaks += 1
        else:
            tally.served += 1
    return tally


def test_the_outbox_swap_race_never_leaks_a_host_file(
    sandbox: Callable[..., Any], tmp_path: Path
) -> None:
    secret = tmp_path / "host.env"
    secret.write_bytes(SECRET)
    layout = SessionLayout(sandbox.spec.session_dir)  # type: ignore[attr-defined]
    folder = layout.outbox / MESSAGE_ID
    with sandbox("swap", f"/session/outbox/{MESSAGE_ID}", folder, secret):
        real = swap_race(
            lambda: read_outbox_files(layout, MESSAGE_ID, ["report.txt"])[0].data,
            attempts=ATTEMPTS,
            until=lambda t: t.served > 0 and t.refused > 0,
            refusals=(SandboxFileError,),  # the only refusal the real path may give
        )
        naive = swap_race(
            lambda: naive_outbox_read(layout, MESSAGE_ID, "report.txt"),
            attempts=1,
            until=lambda t: t.leaks > 0,
            refusals=(UnsafePathError, OSError),  # its own checks can trip over the swap
        )
    assert real.leaks == 0, real
    # The race was live while the real path ran: it met both the file and the planted link.
    assert real.served > 0 and real.refused > 0, real
    assert naive.leaks >= 1, f"positive control never leaked: {naive}"
    print(f"\nswap race: real {real}; naive leaked after {naive.attempts} attempts")


def test_a_planted_claude_md_link_never_makes_root_write_outside(
    sandbox: Callable[..., Any], tmp_path: Path
) -> None:
    spec = sandbox.spec  # type: ignore[attr-defined]
    groups = spec.group_dir.parent
    target = tmp_path / "written-by-root"
    claude = spec.group_dir / "CLAUDE.md"

    def real() -> bool:
        ensure_memory_file(groups, spec.agent_folder, "CLAUDE.md", "# Agent\n")
        return _took(target)

    def naive() -> bool:
        if not claude.exists():  # the pre-fix `nanoclaw init`
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                claude.write_text("# Agent\n")
        return _took(target)

    with sandbox("plant", "/workspace/agent", spec.group_dir, target):
        real_leaks = sum(real() for _ in range(ATTEMPTS))
        naive_leaks, tries = 0, 0
        while naive_leaks == 0 and tries < NAIVE_ATTEMPTS_MAX:
            tries += 1
            naive_leaks += naive()
    assert real_leaks == 0
    assert naive_leaks >= 1, f"positive control never wrote through the link in {tries} tries"
    print(f"\nplanted link: real 0/{ATTEMPTS}; naive wrote through it after {tries} tries")


def _took(target: Path) -> bool:
    """Whether the host wrote through either planted link (and reset for the next attempt)."""
    took = False
    for written in (target, target.with_name(target.name + ".2")):
        if written.exists():
            written.unlink()
            took = True
    return took


def test_a_fifo_outbound_db_never_blocks_the_host(
    sandbox: Callable[..., Any], tmp_path: Path
) -> None:
    spec = sandbox.spec  # type: ignore[attr-defined]
    layout = SessionLayout(spec.session_dir)
    with sqlite3.connect(layout.outbound_db) as conn:
        conn.execute("CREATE TABLE t (a)")
    layout.outbound_db.chmod(0o666)

    def real() -> float:
        started = time.monotonic()
        try:
            conn = connect_session_db(layout.outbound_db, readonly=True, deadline_s=DEADLINE_S)
        except (SandboxFileError, FileNotFoundError, sqlite3.Error):
            return time.monotonic() - started
        try:
            conn.execute("SELECT count(*) FROM t").fetchone()
        except sqlite3.Error:
            pass
        finally:
            conn.close()
        return time.monotonic() - started

    def naive() -> bool:
        """The pre-fix open (SQLite by name, no probe): True when it blocked past the deadline."""
        done = threading.Event()

        def body() -> None:
            with contextlib.suppress(sqlite3.Error):
                conn = sqlite3.connect(f"file:{layout.outbound_db}?mode=ro", uri=True)
                conn.execute("SELECT count(*) FROM t").fetchone()
                conn.close()
            done.set()

        threading.Thread(target=body, daemon=True).start()
        if done.wait(DEADLINE_S):
            return False
        with ConfinedDir.open(layout.root, "outbound") as folder:
            unjam_fifos(folder)  # frees the stuck thread for the rest of the test
        return True

    with sandbox("fifo", "/session/outbound", layout.root / "outbound", tmp_path / "unused"):
        durations = [real() for _ in range(ATTEMPTS)]
        naive_hangs, tries = 0, 0
        while naive_hangs == 0 and tries < NAIVE_ATTEMPTS_MAX // 10:
            tries += 1
            naive_hangs += naive()
    # Each real open returned: at worst at its deadline, its stuck open released by unjamming.
    assert max(durations) < DEADLINE_S + 2.0, max(durations)
    assert naive_hangs >= 1, f"positive control never blocked in {tries} tries"
    slow = sum(d >= DEADLINE_S for d in durations)
    print(
        f"\nfifo: {ATTEMPTS} real opens, max {max(durations):.3f} s, {slow} hit the deadline;"
        f" naive blocked after {tries} tries"
    )
