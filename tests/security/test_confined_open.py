"""Confined opens: links, FIFOs, devices, sockets and oversized files are refused, never followed."""

from __future__ import annotations

import os
import socket
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from nanoclaw.admin.bootstrap import folder_for, initialize
from nanoclaw.contract import confined
from nanoclaw.contract.confined import (
    ConfinedDir,
    create_file,
    ensure_file,
    openat2_available,
    read_file,
    replace_file,
)
from nanoclaw.contract.dbprobe import connect_session_db
from nanoclaw.contract.dbwatch import change_signature
from nanoclaw.errors import SandboxFileError, SandboxFileProblem
from nanoclaw.settings import Settings


@pytest.fixture(params=["openat2", "openat"])
def resolver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run each test with openat2 and with the per-component fallback."""
    if request.param == "openat2":
        if not openat2_available():
            pytest.skip("this kernel has no openat2; the fallback variant covers it")
    else:
        monkeypatch.setattr(confined._openat2, "available", False)
    yield str(request.param)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "box" / "sub").mkdir(parents=True)
    (tmp_path / "box" / "sub" / "ok.txt").write_bytes(b"fine")
    (tmp_path / "secret.env").write_bytes(b"ANTHROPIC_API_KEY=sk-real")
    return tmp_path


def test_a_regular_file_is_read_through_its_descriptor(tree: Path, resolver: str) -> None:
    assert read_file(tree, "box", "sub", "ok.txt") == b"fine"


def test_a_symlinked_file_is_refused(tree: Path, resolver: str) -> None:
    (tree / "box" / "sub" / "link.txt").symlink_to(tree / "secret.env")
    with pytest.raises(SandboxFileError) as caught:
        read_file(tree, "box", "sub", "link.txt")
    assert caught.value.problem is SandboxFileProblem.SYMLINK


def test_a_symlinked_folder_on_the_way_is_refused(tree: Path, resolver: str) -> None:
    (tree / "box" / "hop").symlink_to(tree)
    with pytest.raises(SandboxFileError) as caught:
        read_file(tree, "box", "hop", "secret.env")
    assert caught.value.problem is SandboxFileProblem.SYMLINK


def test_dot_dot_and_separators_are_refused(tree: Path, resolver: str) -> None:
    for parts in (("box", "..", "secret.env"), ("box", "sub/../../secret.env"), ("",)):
        with pytest.raises(SandboxFileError):
            read_file(tree, *parts)


def test_a_fifo_is_refused_without_blocking(tree: Path, resolver: str) -> None:
    os.mkfifo(tree / "box" / "pipe")
    started = time.monotonic()
    with pytest.raises(SandboxFileError) as caught:
        read_file(tree, "box", "pipe")
    assert caught.value.problem is SandboxFileProblem.FIFO
    assert time.monotonic() - started < 5  # it returned at all: a blocking open never would


def test_a_device_and_a_socket_are_refused(tree: Path, resolver: str) -> None:
    if os.geteuid() == 0:
        os.mknod(tree / "box" / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        with pytest.raises(SandboxFileError) as caught:
            read_file(tree, "box", "null")
        assert caught.value.problem is SandboxFileProblem.DEVICE
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tree / "box" / "sock"))
        with pytest.raises(SandboxFileError) as caught:
            read_file(tree, "box", "sock")
        # A socket cannot be opened at all (ENXIO): refused either way, nothing read.
        assert caught.value.problem in (SandboxFileProblem.SOCKET, SandboxFileProblem.FIFO)


def test_an_oversized_file_is_refused(tree: Path, resolver: str) -> None:
    (tree / "box" / "big").write_bytes(b"x" * 2048)
    with pytest.raises(SandboxFileError) as caught:
        read_file(tree, "box", "big", max_bytes=1024)
    assert caught.value.problem is SandboxFileProblem.TOO_LARGE


def test_exclusive_create_never_follows_a_dangling_link(tree: Path, resolver: str) -> None:
    target = tree / "created-by-root"
    (tree / "box" / "CLAUDE.md").symlink_to(target)
    assert create_file(tree, "box", "CLAUDE.md", data=b"x") is False
    with pytest.raises(SandboxFileError):
        ensure_file(tree, "box", "CLAUDE.md", data=b"x")
    assert not target.exists()
    assert ensure_file(tree, "box", "NEW.md", data=b"y") is True
    assert (tree / "box" / "NEW.md").read_bytes() == b"y"
    assert ensure_file(tree, "box", "NEW.md", data=b"z") is False  # existing file kept
    assert (tree / "box" / "NEW.md").read_bytes() == b"y"


def test_replace_swaps_out_a_planted_link_instead_of_writing_through_it(
    tree: Path, resolver: str
) -> None:
    (tree / "box" / "notes.md").symlink_to(tree / "secret.env")
    replace_file(tree, "box", "notes.md", data=b"new")
    assert (tree / "secret.env").read_bytes() == b"ANTHROPIC_API_KEY=sk-real"
    assert not (tree / "box" / "notes.md").is_symlink()
    assert (tree / "box" / "notes.md").read_bytes() == b"new"
    assert sorted(p.name for p in (tree / "box").iterdir()) == ["notes.md", "sub"]


def test_remove_tree_removes_a_link_not_its_target(tree: Path, resolver: str) -> None:
    (tree / "box" / "gone").symlink_to(tree / "box" / "sub")
    with ConfinedDir.open(tree, "box") as box:
        box.remove_tree("gone")
    assert (tree / "box" / "sub" / "ok.txt").exists()


def _session_db(tree: Path) -> Path:
    path = tree / "session" / "outbound" / "outbound.db"
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (a)")
    return path


def test_a_probed_db_opens_and_names_itself(tree: Path, resolver: str) -> None:
    path = _session_db(tree)
    conn = connect_session_db(path, readonly=True)
    try:
        assert conn.execute("PRAGMA database_list").fetchone()[2] == str(path.resolve())
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
    finally:
        conn.close()


@pytest.mark.parametrize("kind", ["db-fifo", "db-link", "journal-fifo", "journal-link"])
def test_a_planted_db_or_journal_is_refused_without_blocking(
    tree: Path, resolver: str, kind: str
) -> None:
    path = _session_db(tree)
    victim = tree / "secret.db"
    with sqlite3.connect(victim) as conn:
        conn.execute("CREATE TABLE messages_out (a)")
    name = path if kind.startswith("db") else path.with_name(path.name + "-journal")
    name.unlink(missing_ok=True)
    if kind.endswith("fifo"):
        os.mkfifo(name)
    else:
        name.symlink_to(victim)
    for readonly in (True, False):
        with pytest.raises(SandboxFileError):
            connect_session_db(path, readonly=readonly, deadline_s=5)
    assert not victim.with_name("secret.db-journal").exists()
    if kind == "db-fifo":
        assert change_signature(path) is None  # the change watcher neither blocks nor follows


def test_a_missing_db_is_created_exclusively_not_by_sqlite(tree: Path, resolver: str) -> None:
    path = tree / "session" / "outbound" / "outbound.db"
    path.parent.mkdir(parents=True)
    with pytest.raises(FileNotFoundError):
        connect_session_db(path, readonly=True)
    conn = connect_session_db(path, readonly=False)
    conn.execute("CREATE TABLE t (a)")
    conn.close()
    assert stat.S_ISREG(path.lstat().st_mode)


def test_a_db_open_that_never_returns_hits_its_deadline() -> None:
    started = time.monotonic()
    with pytest.raises(SandboxFileError) as caught:
        confined.call_with_deadline(lambda: time.sleep(30), deadline_s=0.2, what="a stuck open")
    assert caught.value.problem is SandboxFileProblem.TIMEOUT
    assert time.monotonic() - started < 10
    # The stuck worker is never handed another open: the next one is answered at once.
    assert confined.call_with_deadline(lambda: 42, deadline_s=5, what="the next open") == 42


def test_deadline_opens_reuse_their_worker_threads() -> None:
    confined.call_with_deadline(lambda: None, deadline_s=5, what="warm-up")
    before = {t.ident for t in threading.enumerate() if t.name == "confined-open"}
    for n in range(20):
        assert confined.call_with_deadline(partial(int, n), deadline_s=5, what="an open") == n
    after = {t.ident for t in threading.enumerate() if t.name == "confined-open"}
    assert after == before


def test_nanoclaw_init_leaves_a_planted_claude_md_link_alone(
    settings: Settings, tmp_path: Path
) -> None:
    group = settings.groups_path / folder_for(settings.assistant_name)
    group.mkdir(parents=True)
    target = tmp_path / "created-by-root"
    (group / "CLAUDE.md").symlink_to(target)  # dangling: the old exists() check said "absent"
    report = initialize(settings)
    assert report.agent_folder == group.name
    assert not target.exists()
    assert (group / "CLAUDE.md").is_symlink()  # refused and logged, not followed
    assert (group / "CLAUDE.local.md").is_file()
    assert (settings.groups_path / "global" / "CLAUDE.md").is_file()


@pytest.mark.skipif(os.geteuid() != 0, reason="handing folders over needs a root host")
def test_handing_a_group_folder_to_the_sandbox_uid_never_follows_a_link(tmp_path: Path) -> None:
    from nanoclaw.runtime.docker import _chown_tree

    top = tmp_path / "group"
    (top / "notes").mkdir(parents=True)
    (top / "notes" / "a.md").write_text("a")
    outside = tmp_path / "host-file"
    outside.write_text("host")
    outside_dir = tmp_path / "host-dir"
    outside_dir.mkdir()
    (outside_dir / "b").write_text("b")
    (top / "to-file").symlink_to(outside)
    (top / "to-dir").symlink_to(outside_dir)
    _chown_tree(top, 1000, 1000)
    assert {p.lstat().st_uid for p in [top, *top.rglob("*")]} == {1000}
    assert outside.stat().st_uid == 0
    assert outside_dir.stat().st_uid == 0 and (outside_dir / "b").stat().st_uid == 0
