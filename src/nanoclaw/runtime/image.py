"""Build the agent image: content-tagged, from a host-built wheelhouse, on a local base if need be.

The tag is a hash of everything that goes into the image (the Dockerfile, the runner's sources,
``nanoclaw.contract``, the pinned wheels and the requested base), so an unchanged checkout never
rebuilds and any change does. The build needs no network inside: Python dependencies come from
``.wheelhouse/`` (``pip download`` on the host). When the base image cannot be pulled (no registry
reachable), a bookworm base is made locally with ``debootstrap`` and ``docker import`` (DESIGN §5).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nanoclaw.errors import ConfigError, RuntimeUnavailableError

log = logging.getLogger("nanoclaw.runtime.image")

IMAGE_REPOSITORY = "nanoclaw-agent"
LATEST_TAG = f"{IMAGE_REPOSITORY}:latest"
INSTALL_REPOSITORY = "nanoclaw-install"  # one tag per install: the image it runs on
LOCAL_BASE_IMAGE = "nanoclaw-base:bookworm-minbase"
DEBOOTSTRAP_SUITE = "bookworm"
DEBOOTSTRAP_PACKAGES = ("python3", "python3-venv", "ca-certificates")
WHEEL_PACKAGES = ("anthropic", "tzdata", "mcp", "pydantic")  # the runner's only third-party imports
IMAGE_PYTHON = "3.11"
DEBOOTSTRAP_TIMEOUT_S = 900.0
PIP_TIMEOUT_S = 600.0

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuildResult:
    image: str
    base: str
    base_source: str  # "local", "pulled", "debootstrap", "debootstrap (cached)"
    built: bool  # False when the content-tagged image already existed


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"cannot locate the {name} package")
    return Path(next(iter(spec.submodule_search_locations)))


def runner_sources() -> list[tuple[Path, str]]:
    """(host file, path inside the build context's ``app/``) for everything the runner imports."""
    runner = _package_dir("agent_runner")
    nanoclaw = _package_dir("nanoclaw")
    files: list[tuple[Path, str]] = [
        (nanoclaw / "__init__.py", "nanoclaw/__init__.py"),
        (nanoclaw / "errors.py", "nanoclaw/errors.py"),  # contract.confined raises its errors
    ]
    for base, prefix in ((runner, "agent_runner"), (nanoclaw / "contract", "nanoclaw/contract")):
        for path in sorted(base.rglob("*")):
            if (
                path.is_file()
                and "__pycache__" not in path.parts
                and path.suffix in (".py", ".md", ".json")
            ):
                files.append((path, f"{prefix}/{path.relative_to(base).as_posix()}"))
    return files


def dockerfile_path() -> Path:
    return _package_dir("agent_runner") / "Dockerfile"


def wheel_requirements() -> list[str]:
    """Pin the wheels to the versions the host runs (what the tests exercised)."""
    pins = []
    for name in WHEEL_PACKAGES:
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pins.append(name)
    return pins


def content_tag(*, base_image: str) -> str:
    """``nanoclaw-agent:<12 hex>`` for the current sources, wheels and requested base."""
    digest = hashlib.sha256()
    digest.update(f"base={base_image}\n".encode())
    digest.update(f"python={IMAGE_PYTHON}\n".encode())
    for pin in wheel_requirements():
        digest.update(f"wheel={pin}\n".encode())
    digest.update(b"Dockerfile\0" + dockerfile_path().read_bytes())
    for path, name in runner_sources():
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return f"{IMAGE_REPOSITORY}:{digest.hexdigest()[:12]}"


@dataclass(frozen=True)
class PruneResult:
    removed: tuple[str, ...]
    in_use: tuple[str, ...]


class ImageBuilder:
    """Builds the agent image with a docker client; every step reports through ``progress``."""

    def __init__(
        self,
        *,
        client: Any,
        wheelhouse: Path,
        base_image: str,
        debian_mirror: str,
        progress: Progress,
        python: str = sys.executable,
        install_id: str | None = None,
    ) -> None:
        self.install_id = install_id
        self.client = client
        self.wheelhouse = wheelhouse
        self.base_image = base_image
        self.debian_mirror = debian_mirror
        self.progress = progress
        self.python = python

    def tag(self) -> str:
        return content_tag(base_image=self.base_image)

    def exists(self, image: str) -> bool:
        import docker.errors

        try:
            self.client.images.get(image)
        except docker.errors.ImageNotFound:
            return False
        return True

    def build(self, *, offline_base: bool = False, force: bool = False) -> BuildResult:
        tag = self.tag()
        if not force and self.exists(tag):
            self.claim(tag)
            return BuildResult(
                image=tag, base=self.base_image, base_source="unchanged", built=False
            )
        base, source = self.ensure_base(offline_base=offline_base)
        self.ensure_wheelhouse()
        with tempfile.TemporaryDirectory(prefix="nanoclaw-image-") as tmp:
            context = Path(tmp)
            self._assemble_context(context)
            self.progress(f"building {tag} on {base}")
            self._docker_build(context, tag=tag, base=base)
        self.client.images.get(tag).tag(IMAGE_REPOSITORY, "latest")
        self.claim(tag)
        return BuildResult(image=tag, base=base, base_source=source, built=True)

    def claim(self, image: str) -> None:
        """Tag ``image`` as this install's (``nanoclaw-install:<install id>``), moving the claim.

        Content tags are shared by every checkout on the daemon; the claims tell ``prune``
        which images some install still runs on.
        """
        if self.install_id:
            self.client.images.get(image).tag(INSTALL_REPOSITORY, self.install_id)

    def prune(self, *, keep: str) -> PruneResult:
        """Remove ``nanoclaw-agent`` images no install claims (``keep`` and ``latest`` stay).

        Another checkout's current image carries its claim tag, so it is never removed here.
        An image a container still uses is left alone and reported, never forced away.
        """
        import docker.errors

        claimed = self.client.images.list(name=INSTALL_REPOSITORY)
        protected = {image.id for image in claimed}
        if self.exists(keep):  # `image prune` before the current sources were ever built
            protected.add(self.client.images.get(keep).id)
        removed: list[str] = []
        in_use: list[str] = []
        for image in self.client.images.list(name=IMAGE_REPOSITORY):
            if image.id in protected:
                continue
            for tag in image.tags:
                if not tag.startswith(f"{IMAGE_REPOSITORY}:") or tag == LATEST_TAG:
                    continue
                try:
                    self.client.images.remove(tag)
                except docker.errors.APIError as exc:
                    if exc.status_code != 409:  # 409: a container still uses it
                        raise
                    in_use.append(tag)
                    continue
                removed.append(tag)
        return PruneResult(removed=tuple(removed), in_use=tuple(in_use))

    # -- base ----------------------------------------------------------------------------------
    def ensure_base(self, *, offline_base: bool) -> tuple[str, str]:
        """The base to build on and how it was obtained; never silently another than stated."""
        if not offline_base:
            if self.exists(self.base_image):
                self.progress(f"base image {self.base_image} is present")
                return self.base_image, "local"
            self.progress(f"pulling base image {self.base_image}")
            try:
                repo, _, tag = self.base_image.rpartition(":")
                if not repo or "/" in tag:
                    repo, tag = self.base_image, "latest"
                self.client.images.pull(repo, tag=tag)
                return self.base_image, "pulled"
            except Exception as exc:
                first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                self.progress(f"cannot pull {self.base_image} ({first_line[:160]})")
                self.progress("making a local bookworm base with debootstrap instead")
        if self.exists(LOCAL_BASE_IMAGE):
            self.progress(f"local base {LOCAL_BASE_IMAGE} is present")
            return LOCAL_BASE_IMAGE, "debootstrap (cached)"
        self.debootstrap_base()
        return LOCAL_BASE_IMAGE, "debootstrap"

    def debootstrap_base(self) -> None:
        if shutil.which("debootstrap") is None:
            raise RuntimeUnavailableError(
                "debootstrap is not installed (apt-get install debootstrap)", runtime="docker"
            )
        if shutil.which("docker") is None:
            raise RuntimeUnavailableError(
                "the docker CLI is needed to import the base", runtime="docker"
            )
        if os.geteuid() != 0:
            raise RuntimeUnavailableError(
                "debootstrap needs root: run `sudo nanoclaw image build --offline-base` once",
                runtime="docker",
            )
        with tempfile.TemporaryDirectory(prefix="nanoclaw-rootfs-") as tmp:
            rootfs = Path(tmp) / "rootfs"
            self.progress(
                f"debootstrap --variant=minbase {DEBOOTSTRAP_SUITE} ({self.debian_mirror}); "
                "about a minute"
            )
            self._run_streaming(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(DEBOOTSTRAP_PACKAGES)}",
                    DEBOOTSTRAP_SUITE,
                    str(rootfs),
                    self.debian_mirror,
                ],
                prefix="debootstrap",
            )
            self.progress(f"importing the root file system as {LOCAL_BASE_IMAGE}")
            tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
            try:
                imported = subprocess.run(
                    ["docker", "import", "-", LOCAL_BASE_IMAGE],
                    stdin=tar.stdout,
                    capture_output=True,
                    timeout=DEBOOTSTRAP_TIMEOUT_S,
                    check=False,
                )
            finally:
                if tar.stdout is not None:
                    tar.stdout.close()
                tar.wait()
            if imported.returncode != 0 or tar.returncode != 0:
                raise RuntimeUnavailableError(
                    f"docker import failed: {imported.stderr.decode(errors='replace')[-500:]}",
                    runtime="docker",
                )

    # -- wheels --------------------------------------------------------------------------------
    def ensure_wheelhouse(self) -> None:
        """``pip download`` the pinned wheels for the image's Python; skipped when already there."""
        requirements = "\n".join(wheel_requirements()) + "\n"
        stamp = self.wheelhouse / "requirements.txt"
        if (
            stamp.is_file()
            and stamp.read_text() == requirements
            and any(self.wheelhouse.glob("*.whl"))
        ):
            self.progress(f"wheelhouse {self.wheelhouse} is up to date")
            return
        self.wheelhouse.mkdir(parents=True, exist_ok=True)
        for old in self.wheelhouse.glob("*.whl"):
            old.unlink()
        arch = _docker_arch(self.client)
        self.progress(
            f"downloading wheels into {self.wheelhouse} ({', '.join(wheel_requirements())})"
        )
        command = pip_download_command(
            self.python, arch=arch, dest=self.wheelhouse, requirements=wheel_requirements()
        )
        self._run_streaming(command, prefix="pip")
        stamp.write_text(requirements)

    # -- build ---------------------------------------------------------------------------------
    def _assemble_context(self, context: Path) -> None:
        shutil.copy2(dockerfile_path(), context / "Dockerfile")
        wheels = context / "wheels"
        wheels.mkdir()
        for wheel in self.wheelhouse.glob("*.whl"):
            shutil.copy2(wheel, wheels / wheel.name)
        (wheels / "requirements.txt").write_text("\n".join(wheel_requirements()) + "\n")
        app = context / "app"
        for source, name in runner_sources():
            dest = app / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest)

    def _docker_build(self, context: Path, *, tag: str, base: str) -> None:
        stream = self.client.api.build(
            path=str(context),
            tag=tag,
            buildargs={"BASE_IMAGE": base},
            pull=False,
            rm=True,
            forcerm=True,
            decode=True,
        )
        for chunk in _iter_build(stream):
            if "error" in chunk:
                raise RuntimeUnavailableError(
                    f"image build failed: {chunk['error']}", runtime="docker"
                )
            line = str(chunk.get("stream", "")).rstrip()
            if line:
                self.progress(line)

    def _run_streaming(self, command: list[str], *, prefix: str) -> None:
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as process:
            assert process.stdout is not None
            tail: list[str] = []
            for line in process.stdout:
                line = line.rstrip()
                tail = [*tail[-20:], line]
                if line:
                    self.progress(f"{prefix}: {line}")
            code = process.wait()
        if code != 0:
            detail = "\n".join(tail[-8:])
            raise RuntimeUnavailableError(
                f"{prefix} failed (exit {code}):\n{detail}", runtime="docker"
            )


def _iter_build(stream: Any) -> Iterator[dict[str, Any]]:
    for chunk in stream:
        if isinstance(chunk, dict):
            yield chunk


def _docker_arch(client: Any) -> str:
    try:
        arch = str(client.info().get("Architecture") or "")
    except Exception:
        arch = ""
    return arch or platform.machine()


def pip_download_command(
    python: str, *, arch: str, dest: Path, requirements: Iterable[str]
) -> list[str]:
    """``pip download`` of binary wheels for the image's Python and platform (on the host)."""
    return [
        python,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        "--python-version",
        IMAGE_PYTHON,
        "--implementation",
        "cp",
        *(arg for plat in _platform_tags(arch) for arg in ("--platform", plat)),
        "--dest",
        str(dest),
        *requirements,
    ]


def _platform_tags(arch: str) -> list[str]:
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)
    return [f"manylinux_2_{minor}_{arch}" for minor in (36, 34, 31, 28, 17)] + [
        f"manylinux2014_{arch}",
        f"linux_{arch}",
    ]


def agent_image(*, configured: str | None, base_image: str) -> str:
    """The image runners use: the configured one, else this checkout's content tag."""
    return configured or content_tag(base_image=base_image)
