"""inotify sees writes across the sandbox boundary: Docker and bubblewrap bind mounts, both ways.

The host writes ``inbound.db``, a watcher inside the sandbox wakes; the sandbox writes
``outbound.db``, the host's watcher wakes. The watchers' polling fallback is set to a minute,
so a wake within the test's deadline can only have come from inotify.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nanoclaw.contract.watcher import ChangeWatcher
from tests.conftest import REPO_ROOT

NO_POLLING_S = 60.0  # the fallback poll interval: far beyond every wait below
WAIT_S = 30.0

SANDBOX_SIDE = """
import asyncio, sqlite3, sys
from pathlib import Path
from nanoclaw.contract.watcher import ChangeWatcher

async def main() -> None:
    root = Path(sys.argv[1])
    watcher = ChangeWatcher(fast_interval_s=60.0, slow_interval_s=60.0)
    watcher.watch("inbound", root / "inbound" / "inbound.db")
    print("ready", watcher.uses_inotify and not watcher.polled_keys(), flush=True)
    changed = await watcher.wait(30.0)
    print("changed", sorted(changed), flush=True)
    conn = sqlite3.connect(root / "outbound" / "outbound.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("INSERT INTO t VALUES ('from the sandbox')")
    conn.close()
    watcher.close()

asyncio.run(main())
"""


def _make_session_dirs(root: Path) -> None:
    for name in ("inbound", "outbound"):
        folder = root / name
        folder.mkdir(parents=True)
        conn = sqlite3.connect(folder / f"{name}.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("CREATE TABLE t (v TEXT)")
        conn.close()
        folder.chmod(0o777)  # the sandbox user (uid 1000) writes here
        (folder / f"{name}.db").chmod(0o666)


def _host_write(root: Path) -> None:
    conn = sqlite3.connect(root / "inbound" / "inbound.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("INSERT INTO t VALUES ('from the host')")
    conn.close()


async def _exchange(root: Path, output: Callable[[], str]) -> str:
    """Drive one round trip and return what the sandbox printed."""
    host = ChangeWatcher(fast_interval_s=NO_POLLING_S, slow_interval_s=NO_POLLING_S)
    host.watch("outbound", root / "outbound" / "outbound.db")
    assert host.uses_inotify and not host.polled_keys()
    deadline = time.monotonic() + WAIT_S
    while "ready" not in output():
        assert time.monotonic() < deadline, output()
        await asyncio.sleep(0.05)
    assert "ready True" in output()
    await host.wait(0)  # nothing pending before the write
    _host_write(root)
    changed = await host.wait(WAIT_S)
    host.close()
    assert changed == {"outbound"}
    return output()


@pytest.mark.docker
async def test_inotify_crosses_a_docker_bind_mount_both_ways(
    tmp_path: Path, docker_client: Any, agent_image: str
) -> None:
    root = tmp_path / "session"
    _make_session_dirs(root)
    container = docker_client.containers.run(
        agent_image,
        entrypoint=["python3", "-c", SANDBOX_SIDE, "/workspace/session"],
        volumes={str(root): {"bind": "/workspace/session", "mode": "rw"}},
        network_mode="none",
        detach=True,
    )
    try:
        text = await _exchange(root, lambda: container.logs().decode())
        container.wait(timeout=WAIT_S)
        assert "changed ['inbound']" in container.logs().decode()
    finally:
        container.remove(force=True)
    assert text


@pytest.mark.bwrap
async def test_inotify_crosses_a_bubblewrap_bind_mount_both_ways(
    tmp_path: Path, bwrap_ready: None
) -> None:
    root = tmp_path / "session"
    _make_session_dirs(root)
    bwrap = shutil.which("bwrap")
    assert bwrap is not None
    log_path = tmp_path / "sandbox.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            *[
                bwrap,
                "--ro-bind", "/", "/",
                "--dev", "/dev",
                "--proc", "/proc",
                "--tmpfs", "/tmp",
                "--bind", str(root), "/tmp/session",
                "--ro-bind", str(REPO_ROOT / "src"), "/tmp/app",
                "--unshare-all",
                "--die-with-parent",
                "--setenv", "PYTHONPATH", "/tmp/app",
                sys.executable, "-c", SANDBOX_SIDE, "/tmp/session",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        await _exchange(root, log_path.read_text)
        assert await asyncio.wait_for(proc.wait(), WAIT_S) == 0, log_path.read_text()
        assert "changed ['inbound']" in log_path.read_text()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
