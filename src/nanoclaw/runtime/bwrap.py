"""The ``bwrap`` runtime: the runner under bubblewrap on Linux, no daemon, fast start.

Same mounts as docker (``runtime.plan``), no network (a private network namespace with only
loopback), private ``/tmp`` and ``$HOME``, private pid/ipc/uts namespaces, a user namespace
with every capability dropped, a read-only root, and ``--die-with-parent`` so a killed host
leaves no runner behind. The runner is the host's own Python (its prefix bound read-only) with
the runner's sources staged into a content-addressed folder mounted at ``/app``. bwrap itself
is started with a minimal environment, so ``/proc/1/environ`` inside holds no secret either.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from nanoclaw.contract.runner_config import CONTAINER_GROUP_DIR
from nanoclaw.cpu_affinity import children_unpinned
from nanoclaw.errors import RunnerError, RuntimeUnavailableError
from nanoclaw.executors import BlockingExecutor
from nanoclaw.runtime.base import RunnerHandle, RunnerInfo, RunnerRuntime, RunSpec
from nanoclaw.runtime.plan import (
    CONTAINER_HOME,
    CONTAINER_PACKAGES_DIR,
    sandbox_env,
    sandbox_mounts,
)
from nanoclaw.runtime.process import ProcessHandle

log = logging.getLogger("nanoclaw.runtime.bwrap")

APP_DIR = "/app"
BWRAP_PROBE_TIMEOUT_S = 5.0
# Host files a Python runner needs from /etc (never the whole of /etc: no shadow, no secrets).
ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/alternatives",
    "/etc/mime.types",
)
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


@dataclass(frozen=True)
class PythonLayout:
    """The interpreter a sandboxed runner uses and the host folders it needs (bound read-only)."""

    executable: str
    prefixes: tuple[Path, ...]


def python_layout(python: str) -> PythonLayout:
    same = os.path.realpath(python) == os.path.realpath(sys.executable)
    if same:
        prefixes = {Path(sys.prefix), Path(sys.base_prefix)}
    else:
        out = subprocess.run(
            [python, "-c", "import sys; print(sys.prefix); print(sys.base_prefix)"],
            capture_output=True,
            text=True,
            timeout=BWRAP_PROBE_TIMEOUT_S,
            check=True,
        ).stdout.split()
        prefixes = {Path(p) for p in out}
    keep = tuple(sorted(p for p in prefixes if not _under_system(p)))
    return PythonLayout(executable=python, prefixes=keep)


def _under_system(path: Path) -> bool:
    return any(path == Path(d) or Path(d) in path.parents for d in SYSTEM_DIRS)


def build_bwrap_argv(
    spec: RunSpec,
    *,
    bwrap: str,
    python: PythonLayout,
    app_dir: Path,
    uid: int,
    gid: int,
) -> list[str]:
    """The bubblewrap command line for a session (pure; unit-tested)."""
    argv = [
        bwrap,
        "--die-with-parent",
        "--new-session",
        "--unshare-user",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--unshare-net",
        "--uid",
        str(uid),
        "--gid",
        str(gid),
        "--cap-drop",
        "ALL",
        "--hostname",
        "nanoclaw",
    ]
    for directory in SYSTEM_DIRS:
        host = Path(directory)
        if host.is_symlink():
            argv += ["--symlink", str(host.readlink()), directory]
        elif host.is_dir():
            argv += ["--ro-bind", directory, directory]
    for item in ETC_FILES:
        argv += ["--ro-bind-try", item, item]
    argv += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
        "--perms",
        "0700",
        "--tmpfs",
        CONTAINER_HOME,
        "--ro-bind",
        str(app_dir),
        APP_DIR,
    ]
    # After the private /tmp and $HOME: an interpreter living under either (a checkout in
    # /tmp, a venv in a home folder) must stay visible, so its binds come last.
    for prefix in python.prefixes:
        argv += ["--ro-bind", str(prefix), str(prefix)]
    for mount in sandbox_mounts(spec):
        argv += ["--ro-bind" if mount.read_only else "--bind", str(mount.source), mount.target]
    env = sandbox_env(spec)
    env["PYTHONPATH"] = APP_DIR + (f":{CONTAINER_PACKAGES_DIR}" if spec.packages_dir else "")
    # The runner's interpreter first, as /opt/venv/bin is in the image: ``python`` in the
    # agent's shell and MCP servers is the one that has the runner's packages.
    env["PATH"] = f"{Path(python.executable).parent}:/usr/local/bin:/usr/bin:/bin"
    argv += ["--remount-ro", "/", "--chdir", CONTAINER_GROUP_DIR, "--clearenv"]
    for key, value in sorted(env.items()):
        argv += ["--setenv", key, value]
    argv += ["--", python.executable, "-m", "agent_runner"]
    return argv


def stage_app(root: Path) -> Path:
    """Copy the runner's sources into ``root/<hash>`` once (mounted read-only)."""
    from nanoclaw.runtime.image import runner_sources

    files = runner_sources()
    digest = hashlib.sha256()
    for source, name in files:
        digest.update(name.encode() + b"\0" + source.read_bytes() + b"\0")
    target = root / digest.hexdigest()[:12]
    if (target / ".complete").is_file():
        return target
    staging = root / f".{target.name}.{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    for source, name in files:
        dest = staging / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest)
    (staging / ".complete").write_text("")
    try:
        staging.rename(target)
    except OSError:  # another host process staged it first
        shutil.rmtree(staging, ignore_errors=True)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    for old in root.iterdir():  # earlier versions: their runners died with the host that used them
        if old != target and not old.name.startswith(".") and (old / ".complete").is_file():
            shutil.rmtree(old, ignore_errors=True)
    return target


def bwrap_works(bwrap: str | None = None) -> tuple[bool, str]:
    """Whether bubblewrap can make a sandbox here (installed, Linux, user namespaces allowed)."""
    if not sys.platform.startswith("linux"):
        return False, "bubblewrap needs Linux"
    binary = bwrap or shutil.which("bwrap")
    if binary is None:
        return False, "bwrap is not installed (apt-get install bubblewrap)"
    try:
        probe = subprocess.run(
            [binary, "--unshare-user", "--unshare-net", "--ro-bind", "/", "/", "--", "/bin/true"],
            capture_output=True,
            text=True,
            timeout=BWRAP_PROBE_TIMEOUT_S,
            check=False,
            env={"PATH": "/usr/bin:/bin"},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"bwrap cannot run: {exc}"
    if probe.returncode != 0:
        return False, f"bwrap cannot make a sandbox here: {probe.stderr.strip()[:200]}"
    return True, f"bubblewrap at {binary} works"


class BwrapRuntime(RunnerRuntime):
    name = "bwrap"

    def __init__(
        self,
        *,
        python: str,
        stage_root: Path,
        blocking: BlockingExecutor,
        runner_uid: int,
        runner_gid: int,
        bwrap: str | None = None,
        host_uid: int | None = None,
    ) -> None:
        self.python = python
        self.stage_root = stage_root
        self.blocking = blocking  # probing bwrap, staging the app
        self.bwrap = bwrap or shutil.which("bwrap") or "bwrap"
        uid = os.getuid() if host_uid is None else host_uid
        # A root host maps the runner to an unprivileged uid inside its user namespace.
        self.uid, self.gid = (runner_uid, runner_gid) if uid == 0 else (uid, os.getgid())
        self._handles: dict[str, ProcessHandle] = {}
        self._layout: PythonLayout | None = None
        self._app_dir: Path | None = None
        self._checked = False

    async def check(self) -> None:
        if self._checked:
            return
        ok, reason = await self.blocking.run(bwrap_works, self.bwrap)
        if not ok:
            raise RuntimeUnavailableError(reason, runtime=self.name)
        self._checked = True

    async def _prepare(self) -> tuple[PythonLayout, Path]:
        if self._layout is None or self._app_dir is None:
            self._layout = await self.blocking.run(python_layout, self.python)
            self.stage_root.mkdir(parents=True, exist_ok=True)
            self._app_dir = await self.blocking.run(stage_app, self.stage_root)
        return self._layout, self._app_dir

    async def start(self, spec: RunSpec) -> RunnerHandle:
        await self.check()
        for handle in self._handles.values():
            if handle.session_id == spec.session_id and handle.is_running():
                raise RunnerError(
                    "a runner already runs for this session", session_id=spec.session_id
                )
        layout, app_dir = await self._prepare()
        argv = build_bwrap_argv(
            spec, bwrap=self.bwrap, python=layout, app_dir=app_dir, uid=self.uid, gid=self.gid
        )
        try:
            # The runner (and its tools) may use every CPU, not the host's pinned one.
            with children_unpinned():
                process = await asyncio.create_subprocess_exec(
                    *argv,
                    env={"PATH": "/usr/bin:/bin"},  # bwrap is pid 1's ancestor: nothing secret here
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                    start_new_session=True,
                )
        except OSError as exc:
            raise RunnerError(f"cannot start bwrap: {exc}", session_id=spec.session_id) from exc
        handle = ProcessHandle(spec=spec, process=process)
        handle.runner_id = f"bwrap-{process.pid}"
        self._handles = {k: h for k, h in self._handles.items() if h.is_running()}
        self._handles[handle.runner_id] = handle
        return handle

    async def list_runners(self, *, install_id: str) -> list[RunnerInfo]:
        # --die-with-parent: a runner never outlives the host that started it, so only ours exist.
        return [
            RunnerInfo(h.runner_id, h.session_id, install_id, h.is_running())
            for h in self._handles.values()
            if h.is_running()
        ]

    async def remove(self, runner_id: str) -> None:
        handle = self._handles.pop(runner_id, None)
        if handle is not None:
            await handle.stop(grace_s=1.0)
