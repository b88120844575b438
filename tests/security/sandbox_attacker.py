"""Run an attacker loop inside a real sandbox (Docker as uid 1000, or bubblewrap) with the runner's mounts.

The sandbox is built by the runtimes' own plans (``build_run_kwargs``, ``build_bwrap_argv``):
the same mounts, user, capabilities and namespaces a runner gets; only the command differs.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nanoclaw.contract.layout import SUBDIRS
from nanoclaw.runtime.base import RunSpec
from nanoclaw.runtime.bwrap import build_bwrap_argv, python_layout, stage_app
from nanoclaw.runtime.docker import DockerLimits, build_run_kwargs

RUNNER_UID = 1000
READY_TIMEOUT_S = 60.0

# Loops until killed. argv: mode, folder (inside the sandbox), host path to point at.
ATTACKER = r"""
import contextlib, ctypes, os, sys
mode, folder, target = sys.argv[1], sys.argv[2], sys.argv[3]
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2

def exchange(a, b):
    if libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) != 0:
        raise OSError(ctypes.get_errno(), "renameat2")

os.makedirs(folder, exist_ok=True)
os.chdir(folder)
if mode == "swap":  # a harmless file and a link to a host file trade places, forever
    with open("report.txt", "wb") as f:
        f.write(b"harmless report\n")
    os.symlink(target, ".bait")
    open("ready", "w").close()
    while True:
        exchange(b"report.txt", b".bait")
elif mode == "plant":  # CLAUDE.md: two dangling links to host paths trade places, forever
    os.symlink(target, "CLAUDE.md")
    os.symlink(target + ".2", ".other")
    open("ready", "w").close()
    while True:
        try:
            exchange(b"CLAUDE.md", b".other")
        except OSError:  # the host replaced a name: plant the link again
            for name, to in (("CLAUDE.md", target), (".other", target + ".2")):
                with contextlib.suppress(OSError):
                    if not os.path.islink(name):
                        os.symlink(to, ".new")
                        os.rename(".new", name)
elif mode == "fifo":  # outbound.db: a real DB and a FIFO trade places, forever
    os.mkfifo(".fifo")
    open("ready", "w").close()
    while True:
        exchange(b"outbound.db", b".fifo")
"""


def make_spec(root: Path, *, docker: bool) -> RunSpec:
    """A session folder and a group folder laid out as the host lays them out.

    On a root host Docker's sandbox user (uid 1000) is handed the folders it writes; under
    bubblewrap the sandbox uid maps to the host's own, which owns them already.
    """
    session_dir = root / "sessions" / "agent" / "sess-race"
    for sub in SUBDIRS:
        (session_dir / sub).mkdir(parents=True, exist_ok=True)
    group_dir = root / "groups" / "agent"
    global_dir = root / "groups" / "global"
    group_dir.mkdir(parents=True, exist_ok=True)
    global_dir.mkdir(parents=True, exist_ok=True)
    # What the host does on a root host: the sandbox uid owns the folders it writes.
    for writable in (session_dir / "outbound", session_dir / "outbox", group_dir):
        if docker and os.geteuid() == 0:
            os.chown(writable, RUNNER_UID, RUNNER_UID)
    return RunSpec(
        session_id="sess-race",
        agent_group_id="ag-race",
        agent_folder="agent",
        session_dir=session_dir,
        group_dir=group_dir,
        global_dir=global_dir,
        install_id="race" + secrets.token_hex(3),
        timezone="UTC",
    )


def _wait_ready(ready: Path, alive: Any, describe: Any) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not ready.exists():
        assert alive(), f"the attacker exited early: {describe()}"
        assert time.monotonic() < deadline, f"the attacker never got ready: {describe()}"
        time.sleep(0.02)


@contextlib.contextmanager
def docker_attacker(
    client: Any, image: str, spec: RunSpec, mode: str, folder: str, host_ready: Path, target: Path
) -> Iterator[None]:
    kwargs = build_run_kwargs(
        spec, image=image, user=f"{RUNNER_UID}:{RUNNER_UID}", limits=DockerLimits()
    )
    kwargs["entrypoint"] = ["/opt/venv/bin/python", "-c", ATTACKER, mode, folder, str(target)]
    container = client.containers.run(**kwargs)
    try:

        def alive() -> bool:
            container.reload()
            return bool(container.status in ("created", "running"))

        _wait_ready(host_ready, alive, lambda: container.logs().decode()[-2000:])
        yield
    finally:
        container.remove(force=True)


@contextlib.contextmanager
def bwrap_attacker(
    stage: Path, spec: RunSpec, mode: str, folder: str, host_ready: Path, target: Path
) -> Iterator[None]:
    bwrap = shutil.which("bwrap")
    assert bwrap is not None
    layout = python_layout(sys.executable)
    argv = build_bwrap_argv(
        spec,
        bwrap=bwrap,
        python=layout,
        app_dir=stage_app(stage),
        uid=RUNNER_UID,
        gid=RUNNER_UID,
    )
    command = [layout.executable, "-c", ATTACKER, mode, folder, str(target)]
    argv = [*argv[: argv.index("--") + 1], *command]
    log = stage / "attacker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env={"PATH": "/usr/bin:/bin"}
        )
    try:
        _wait_ready(host_ready, lambda: proc.poll() is None, lambda: log.read_text()[-2000:])
        yield
    finally:
        proc.kill()
        proc.wait(timeout=30)
