"""Packages an agent installs: fetched by the host, built into a per-group layer with no network.

DESIGN §5: no container ever has network. After an admin approves ``install_packages`` the
host downloads what is needed (pip wheels for the image's Python; Debian packages with their
dependencies resolved against what the image already has) and builds
``nanoclaw-agent-layer:<base>-<packages>`` FROM the agent image with the build's network off.
The agent's next runner uses the layer. A layer names the agent image it was built on; when
that image changes (an upgrade) the layer is stale and runners fall back to the plain image
until the packages are built again (``stale_layer``). Without Docker (bubblewrap, process) only
pip packages are possible: they are installed into ``data/packages/<agent group>/site``, which
the sandbox mounts read-only on ``PYTHONPATH``.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nanoclaw.contract.packages import PackageNameError, check_package_names
from nanoclaw.errors import RuntimeUnavailableError, ValidationError
from nanoclaw.runtime.image import _docker_arch, pip_download_command

LAYER_REPOSITORY = "nanoclaw-agent-layer"
FETCH_TIMEOUT_S = 600.0
BUILD_TIMEOUT_S = 900.0
SITE_DIR = "site"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PackageRequest:
    pip: tuple[str, ...] = ()
    apt: tuple[str, ...] = ()

    def digest(self) -> str:
        text = json.dumps({"pip": sorted(self.pip), "apt": sorted(self.apt)})
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def merged(self, other: PackageRequest) -> PackageRequest:
        return PackageRequest(
            pip=tuple(dict.fromkeys([*self.pip, *other.pip])),
            apt=tuple(dict.fromkeys([*self.apt, *other.apt])),
        )


def validate_request(pip: Any, apt: Any) -> PackageRequest:
    """Names checked (``nanoclaw.contract.packages``), at most 20 in one request."""
    try:
        pips, apts = check_package_names(pip, apt)
    except PackageNameError as exc:
        raise ValidationError(str(exc), field="packages") from exc
    return PackageRequest(pip=tuple(pips), apt=tuple(apts))


def site_dir(data_path: Path, agent_group_id: str) -> Path:
    return data_path / "packages" / agent_group_id / SITE_DIR


def packages_site(data_path: Path, agent_group_id: str) -> Path | None:
    """The group's pip folder for a runner without Docker, when packages were installed there."""
    site = site_dir(data_path, agent_group_id)
    return site if site.is_dir() else None


def layer_tag(base_image: str, request: PackageRequest) -> str:
    base = base_image.rsplit(":", 1)[-1][:12]
    return f"{LAYER_REPOSITORY}:{base}-{request.digest()}"


def stale_layer(image_tag: str | None, base_image: str) -> bool:
    """Whether a group's layer was built on another agent image than the current one."""
    if not image_tag or not image_tag.startswith(f"{LAYER_REPOSITORY}:"):
        return False
    return not image_tag.split(":", 1)[1].startswith(base_image.rsplit(":", 1)[-1][:12] + "-")


LAYER_DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
USER root
COPY debs /tmp/debs
COPY wheels /tmp/wheels
RUN set -e; \\
    if ls /tmp/debs/*.deb >/dev/null 2>&1; then dpkg -i /tmp/debs/*.deb; fi; \\
    if [ -s /tmp/wheels/requirements.txt ]; then \\
      /opt/venv/bin/python -m pip install --no-index --no-cache-dir --disable-pip-version-check \\
        --find-links /tmp/wheels -r /tmp/wheels/requirements.txt; \\
    fi; \\
    rm -rf /tmp/debs /tmp/wheels
USER 1000:1000
"""


class PackageBuilder:
    def __init__(
        self,
        *,
        client: Any,
        progress: Progress,
        python: str = sys.executable,
        run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
    ) -> None:
        self.client = client
        self.progress = progress
        self.python = python
        self._run = run

    # -- fetching (the host has the network; the build does not) -------------------------------
    def fetch_wheels(self, packages: Iterable[str], dest: Path) -> None:
        names = list(packages)
        if not names:
            return
        arch = _docker_arch(self.client) if self.client is not None else platform.machine()
        command = pip_download_command(self.python, arch=arch, dest=dest, requirements=names)
        self._check(command, what="pip download")
        (dest / "requirements.txt").write_text("\n".join(names) + "\n")

    def image_packages(self, image: str) -> set[str]:
        """Debian packages already installed in ``image`` (read with the network off)."""
        out = self.client.containers.run(
            image,
            ["dpkg-query", "-W", "-f", "${Package}\\n"],
            entrypoint=[],
            network_mode="none",
            remove=True,
            user="0:0",
        )
        text = out.decode() if isinstance(out, bytes) else str(out)
        return {line.strip() for line in text.splitlines() if line.strip()}

    def fetch_debs(self, packages: Iterable[str], dest: Path, *, installed: set[str]) -> list[str]:
        """Download ``packages`` and the dependencies the image lacks; returns what was fetched."""
        names = [p.split("=", 1)[0] for p in packages]
        if not names:
            return []
        if shutil.which("apt-cache") is None or shutil.which("apt-get") is None:
            raise RuntimeUnavailableError(
                "Debian packages need apt on the host (a Debian or Ubuntu host matching the "
                "agent image); pip packages work everywhere",
                runtime="docker",
            )
        depends = self._check(
            [
                "apt-cache",
                "depends",
                "--recurse",
                "--no-recommends",
                "--no-suggests",
                "--no-conflicts",
                "--no-breaks",
                "--no-replaces",
                "--no-enhances",
                "--no-pre-depends",
                *names,
            ],
            what="apt-cache depends",
        )
        closure = {n for n in names}
        for line in depends.splitlines():
            word = line.strip()
            if word.startswith("Depends:"):
                word = word.split(":", 1)[1].strip()
            if word and not word.startswith(("<", "|")) and " " not in word:
                closure.add(word.split(":")[0])
        wanted = sorted(p for p in closure if p not in installed)
        if wanted:
            self._check(["apt-get", "download", *wanted], what="apt-get download", cwd=dest)
        return wanted

    def _check(self, command: list[str], *, what: str, cwd: Path | None = None) -> str:
        self.progress(f"{what}: {' '.join(command[-6:])}")
        try:
            done = self._run(
                command,
                capture_output=True,
                text=True,
                timeout=FETCH_TIMEOUT_S,
                cwd=cwd,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeUnavailableError(f"{what} failed: {exc}", runtime="docker") from exc
        if done.returncode != 0:
            tail = (done.stderr or done.stdout or "").strip().splitlines()[-6:]
            raise RuntimeUnavailableError(
                f"{what} failed (exit {done.returncode}): {' / '.join(tail)}", runtime="docker"
            )
        return done.stdout

    # -- the layer -----------------------------------------------------------------------------
    def build_layer(self, base_image: str, request: PackageRequest) -> str:
        """Build (or reuse) the layer for ``request`` on ``base_image``; returns its tag."""
        tag = layer_tag(base_image, request)
        try:
            self.client.images.get(tag)
            self.progress(f"{tag} exists")
            return tag
        except Exception:  # docker.errors.ImageNotFound, without importing docker here
            pass
        with tempfile.TemporaryDirectory(prefix="nanoclaw-layer-") as tmp:
            context = Path(tmp)
            (context / "debs").mkdir()
            (context / "wheels").mkdir()
            (context / "Dockerfile").write_text(LAYER_DOCKERFILE)
            self.fetch_wheels(request.pip, context / "wheels")
            if not (context / "wheels" / "requirements.txt").exists():
                (context / "wheels" / "requirements.txt").write_text("")
            installed = self.image_packages(base_image) if request.apt else set()
            self.fetch_debs(request.apt, context / "debs", installed=installed)
            self.progress(f"building {tag} on {base_image} (network off)")
            stream = self.client.api.build(
                fileobj=_tar(context),
                custom_context=True,
                tag=tag,
                pull=False,
                rm=True,
                forcerm=True,
                decode=True,
                network_mode="none",
                buildargs={"BASE_IMAGE": base_image},
                labels={"nanoclaw.layer-of": base_image},
            )
            for chunk in stream:
                if isinstance(chunk, dict) and "error" in chunk:
                    raise RuntimeUnavailableError(
                        f"package layer build failed: {str(chunk['error']).strip()}",
                        runtime="docker",
                    )
        return tag

    # -- without Docker: a pip site folder ----------------------------------------------------
    def install_site(self, request: PackageRequest, site: Path) -> None:
        """pip packages into ``site`` for a bubblewrap or process runner (mounted read-only)."""
        if request.apt:
            raise RuntimeUnavailableError(
                "Debian packages are only possible with Docker (they are built into the image)",
                runtime="bwrap",
            )
        site.mkdir(parents=True, exist_ok=True)
        self._check(
            [
                self.python,
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--only-binary=:all:",
                "--target",
                str(site),
                "--upgrade",
                *request.pip,
            ],
            what="pip install --target",
        )


def _tar(context: Path) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(str(context), arcname=".")
    buffer.seek(0)
    return buffer


@dataclass(frozen=True)
class InstallOutcome:
    image: str | None  # the layer a Docker runner uses from now on (None without Docker)
    message: str


class PackageInstaller:
    """Install a group's whole package set for the runtime in use (blocking: call off the loop)."""

    def __init__(self, *, runtime: Any, data_path: Path, progress: Progress) -> None:
        self.runtime = runtime
        self.data_path = data_path
        self.progress = progress

    def site_dir(self, agent_group_id: str) -> Path:
        return site_dir(self.data_path, agent_group_id)

    def install(
        self, agent_group_id: str, request: PackageRequest, *, runtime_name: str | None = None
    ) -> InstallOutcome:
        runtime = self.runtime
        if hasattr(runtime, "runtime_for"):  # the router: the group's own runtime, or the default
            runtime = runtime.runtime_for(runtime_name)
        name = getattr(runtime, "name", "")
        listed = ", ".join([*request.pip, *request.apt])
        if name == "docker":
            builder = PackageBuilder(
                client=runtime.client(),
                progress=self.progress,
            )
            tag = builder.build_layer(runtime.image, request)
            return InstallOutcome(
                tag,
                f"Installed {listed} into your image ({tag}); they are there from your next start.",
            )
        builder = PackageBuilder(client=None, progress=self.progress)
        builder.install_site(request, self.site_dir(agent_group_id))
        return InstallOutcome(
            None,
            f"Installed the pip packages {listed} for your sandbox; they are importable from your "
            "next start (Debian packages need the Docker runtime).",
        )
