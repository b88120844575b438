"""The ``docker`` runtime: one hardened container per session, through the docker SDK.

Every SDK call blocks (requests), so each runs in a thread; waiting for a container's exit uses
its own daemon thread so that long waits never starve the shared executor. A container is
created (never ``run``: that would pull a missing image silently), started, waited for, and on
exit its code and last log lines are kept before it is removed. Its name is derived from the
install and session ids, so the daemon itself refuses a second container for a session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
from docker.types import Mount as DockerMount

from nanoclaw.contract.runner_config import CONTAINER_GROUP_DIR
from nanoclaw.errors import ImageMissingError, RunnerError, RuntimeUnavailableError
from nanoclaw.executors import BlockingExecutor
from nanoclaw.runtime.base import (
    LOG_TAIL_LINES,
    RunnerExit,
    RunnerHandle,
    RunnerInfo,
    RunnerRuntime,
    RunSpec,
)
from nanoclaw.runtime.packages import stale_layer
from nanoclaw.runtime.plan import (
    CONTAINER_HOME,
    RUNNER_WRITABLE_SESSION_DIRS,
    TMPFS_HOME_BYTES,
    TMPFS_TMP_BYTES,
    runner_name,
    sandbox_env,
    sandbox_mounts,
)

log = logging.getLogger("nanoclaw.runtime.docker")

LABEL_INSTALL = "nanoclaw.install"
LABEL_SESSION = "nanoclaw.session"
LABEL_AGENT_GROUP = "nanoclaw.agent_group"
DOCKER_PING_TIMEOUT_S = 3.0
DOCKER_API_TIMEOUT_S = 30.0
REMOVE_STOP_TIMEOUT_S = 1
INSTALL_HINT = (
    "install Docker (https://docs.docker.com/engine/install/, or `apt-get install docker.io`) "
    "and start its daemon, or use bubblewrap on Linux (NANOCLAW_RUNTIME=bwrap)"
)

T = TypeVar("T")


@dataclass(frozen=True)
class DockerLimits:
    memory: str = "1g"
    cpus: float = 1.0
    pids: int = 256


def build_run_kwargs(
    spec: RunSpec, *, image: str, user: str, limits: DockerLimits
) -> dict[str, Any]:
    """The keyword arguments of ``containers.create`` for a session (pure; unit-tested)."""
    uid, _, gid = user.partition(":")
    if uid in ("0", "root", ""):
        raise RunnerError("refusing to run a sandbox as root", session_id=spec.session_id)
    mounts = [
        DockerMount(target=m.target, source=str(m.source), type="bind", read_only=m.read_only)
        for m in sandbox_mounts(spec)
    ]
    kwargs: dict[str, Any] = {
        "image": image,
        "name": runner_name(spec.install_id, spec.session_id),
        "detach": True,
        "init": True,
        "user": user,
        "working_dir": CONTAINER_GROUP_DIR,
        "environment": sandbox_env(spec),
        "labels": {
            LABEL_INSTALL: spec.install_id,
            LABEL_SESSION: spec.session_id,
            LABEL_AGENT_GROUP: spec.agent_group_id,
        },
        "mounts": mounts,
        "read_only": True,
        "tmpfs": {
            "/tmp": f"rw,nosuid,nodev,size={TMPFS_TMP_BYTES},mode=1777",
            CONTAINER_HOME: (
                f"rw,nosuid,nodev,size={TMPFS_HOME_BYTES},mode=0700,uid={uid},gid={gid or uid}"
            ),
        },
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "mem_limit": limits.memory,
        "memswap_limit": limits.memory,
        "nano_cpus": int(limits.cpus * 1e9),
        "pids_limit": limits.pids,
        "ipc_mode": "private",
        "stop_signal": "SIGTERM",
    }
    if spec.network == "open":
        kwargs["network_mode"] = "bridge"
        kwargs["extra_hosts"] = {"host.docker.internal": "host-gateway"}
    else:
        kwargs["network_mode"] = "none"
    return kwargs


async def _in_daemon_thread(fn: Callable[[], T], *, name: str) -> T:
    """Run a long blocking call in its own daemon thread (never blocks shutdown or the executor)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def target() -> None:
        try:
            value = fn()
        except BaseException as exc:
            with contextlib.suppress(RuntimeError):  # loop closed
                loop.call_soon_threadsafe(settle, None, exc)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, value, None)

    threading.Thread(target=target, name=name, daemon=True).start()
    return await future


class DockerHandle(RunnerHandle):
    def __init__(self, *, spec: RunSpec, container: Any, blocking: BlockingExecutor) -> None:
        self.blocking = blocking  # Docker API calls
        self.session_id = spec.session_id
        self.runner_id = str(container.id)
        self.container = container
        self._exit: asyncio.Future[RunnerExit] | None = None
        self._done = False

    async def wait(self) -> RunnerExit:
        if self._exit is None:
            self._exit = asyncio.ensure_future(self._wait())
        return await asyncio.shield(self._exit)

    async def _wait(self) -> RunnerExit:
        try:
            status = await _in_daemon_thread(self.container.wait, name=f"wait-{self.session_id}")
            code: int | None = int(status.get("StatusCode", -1))
        except docker.errors.NotFound:
            code = None
        except Exception as exc:  # daemon gone: report, never hang
            log.warning("waiting for container of %s failed: %s", self.session_id, exc)
            code = None
        self._done = True
        tail = await self.blocking.run(self._tail_and_remove)
        return RunnerExit(exit_code=code, log_tail=tail)

    def _tail_and_remove(self) -> str:
        tail = ""
        try:
            raw = self.container.logs(stdout=True, stderr=True, tail=LOG_TAIL_LINES)
            tail = raw.decode(errors="replace").rstrip()
        except Exception as exc:
            log.debug("no logs for %s: %s", self.session_id, exc)
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            self.container.remove(force=True)
        return tail

    def is_running(self) -> bool:
        return not self._done

    async def stop(self, *, grace_s: float) -> None:
        if self._done:
            return
        timeout = max(0, round(grace_s))
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            await self.blocking.run(self.container.stop, timeout=timeout)
        await self.wait()


class DockerRuntime(RunnerRuntime):
    name = "docker"

    def __init__(
        self,
        *,
        image: str,
        limits: DockerLimits,
        blocking: BlockingExecutor,
        runner_uid: int,
        runner_gid: int,
        client_factory: Callable[[], Any] | None = None,
        host_uid: int | None = None,
        host_gid: int | None = None,
    ) -> None:
        self.image = image
        self.limits = limits
        self.blocking = blocking  # every Docker API call
        self._client_factory = client_factory or (
            lambda: docker.from_env(timeout=int(DOCKER_API_TIMEOUT_S))
        )
        self._client: Any = None
        self._lock = threading.Lock()
        uid = os.getuid() if host_uid is None else host_uid
        gid = os.getgid() if host_gid is None else host_gid
        # Non-root hosts run runners as themselves; a root host uses a dedicated uid and hands
        # it the folders the runner writes.
        self.user_uid, self.user_gid = (runner_uid, runner_gid) if uid == 0 else (uid, gid)
        self._chown = uid == 0

    @property
    def user(self) -> str:
        return f"{self.user_uid}:{self.user_gid}"

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    self._client = self._client_factory()
                except docker.errors.DockerException as exc:
                    raise RuntimeUnavailableError(
                        f"the Docker daemon does not answer ({exc}); {INSTALL_HINT}",
                        runtime=self.name,
                    ) from exc
            return self._client

    async def check(self) -> None:
        await self.blocking.run(self._check_image, self.image)

    def _check_image(self, image: str) -> None:
        client = self.client()
        try:
            client.ping()
        except Exception as exc:
            raise RuntimeUnavailableError(
                f"the Docker daemon does not answer ({exc}); {INSTALL_HINT}", runtime=self.name
            ) from exc
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound as exc:
            raise ImageMissingError(image=image, runtime=self.name) from exc

    async def start(self, spec: RunSpec) -> RunnerHandle:
        image = spec.image or self.image
        if stale_layer(spec.image, self.image):
            # Built on an older agent image: its runner would be old code. Run the current
            # image without the packages until they are installed again.
            log.warning(
                "the package layer %s of %s predates the agent image %s; starting without it "
                "(ask the agent to install its packages again)",
                spec.image,
                spec.agent_folder,
                self.image,
            )
            image = self.image
        kwargs = build_run_kwargs(spec, image=image, user=self.user, limits=self.limits)
        container = await self.blocking.run(self._create_and_start, spec, kwargs)
        return DockerHandle(spec=spec, container=container, blocking=self.blocking)

    def _create_and_start(self, spec: RunSpec, kwargs: dict[str, Any]) -> Any:
        client = self.client()
        try:  # check() pinged the daemon; a group may name its own image
            client.images.get(kwargs["image"])
        except docker.errors.ImageNotFound as exc:
            raise ImageMissingError(image=str(kwargs["image"]), runtime=self.name) from exc
        self._clear_stale(client, spec)
        if self._chown:
            self._hand_over(spec)
        try:
            container = client.containers.create(**kwargs)
        except docker.errors.ImageNotFound as exc:
            raise ImageMissingError(image=str(kwargs["image"]), runtime=self.name) from exc
        except docker.errors.APIError as exc:
            raise RunnerError(f"docker create failed: {exc}", session_id=spec.session_id) from exc
        try:
            container.start()
        except docker.errors.APIError as exc:
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)
            raise RunnerError(f"docker start failed: {exc}", session_id=spec.session_id) from exc
        return container

    def _clear_stale(self, client: Any, spec: RunSpec) -> None:
        """One container per session, by the daemon's view: refuse a live one, drop a dead one."""
        labels = [f"{LABEL_INSTALL}={spec.install_id}", f"{LABEL_SESSION}={spec.session_id}"]
        for summary in _summaries(client, labels):
            if summary.get("State") in ("running", "restarting", "paused"):
                raise RunnerError(
                    f"a container ({str(summary.get('Id'))[:12]}) already runs for this session",
                    session_id=spec.session_id,
                )
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                client.api.remove_container(summary["Id"], force=True)

    def _hand_over(self, spec: RunSpec) -> None:
        """Give the runner's uid the folders it writes (the host runs as root)."""
        writable = [spec.session_dir / d for d in RUNNER_WRITABLE_SESSION_DIRS]
        writable.append(spec.group_dir)
        writable.extend(m.source for m in spec.extra_mounts if not m.read_only)
        for top in writable:
            _chown_tree(top, self.user_uid, self.user_gid)

    async def list_runners(self, *, install_id: str) -> list[RunnerInfo]:
        return await self.blocking.run(self._list, install_id)

    def _list(self, install_id: str) -> list[RunnerInfo]:
        infos = []
        for summary in _summaries(self.client(), [f"{LABEL_INSTALL}={install_id}"]):
            labels = summary.get("Labels") or {}
            if labels.get(LABEL_INSTALL) != install_id:
                continue
            infos.append(
                RunnerInfo(
                    runner_id=str(summary["Id"]),
                    session_id=str(labels.get(LABEL_SESSION, "")),
                    install_id=install_id,
                    running=summary.get("State") == "running",
                )
            )
        return infos

    async def remove(self, runner_id: str) -> None:
        await self.blocking.run(self._remove, runner_id)

    def _remove(self, runner_id: str) -> None:
        client = self.client()
        try:
            container = client.containers.get(runner_id)
            container.remove(force=True)
        except docker.errors.NotFound:
            return


def _summaries(client: Any, labels: list[str]) -> list[dict[str, Any]]:
    """Containers matching every label, from one list call (no per-container lookups that
    could race with a removal)."""
    found = client.api.containers(all=True, filters={"label": labels})
    return [c for c in found if isinstance(c, dict) and "Id" in c]


def _chown_tree(top: Path, uid: int, gid: int) -> None:
    """Hand a sandbox-writable tree to the runner's uid, walking by descriptors (invariant 6).

    Another runner of the same group may be changing the tree meanwhile: ``os.fwalk`` never
    follows a link and checks each folder it enters is the one it listed, and every ``chown``
    is relative to the folder's descriptor without following, so no host file outside the
    tree is ever handed over.
    """
    if not top.is_dir():
        return
    with contextlib.suppress(FileNotFoundError):
        _chown_entry(top.name, uid, gid, dir_fd=None, path=top)
    for _folder, dirs, files, dir_fd in os.fwalk(top, follow_symlinks=False):
        for name in (*dirs, *files):
            with contextlib.suppress(FileNotFoundError):
                _chown_entry(name, uid, gid, dir_fd=dir_fd)


def _chown_entry(
    name: str, uid: int, gid: int, *, dir_fd: int | None, path: Path | None = None
) -> None:
    target: str | Path = path if path is not None else name
    st = os.stat(target, dir_fd=dir_fd, follow_symlinks=False)
    if st.st_uid != uid or st.st_gid != gid:
        os.chown(target, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
