"""``nanoclaw image build|prune``: the content-tagged agent image, and removing old ones."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console

from nanoclaw.runtime.image import ImageBuilder

image_app = typer.Typer(help="The agent image that runs in Docker.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


@image_app.command("build")
def build(
    offline_base: Annotated[
        bool,
        typer.Option("--offline-base", help="Make the base locally with debootstrap; never pull."),
    ] = False,
    force: Annotated[bool, typer.Option(help="Rebuild even when the tagged image exists.")] = False,
    quiet_if_current: Annotated[
        bool, typer.Option("--quiet-if-current", help="One line of output when nothing changed.")
    ] = False,
) -> None:
    """Build the agent image from agent_runner/Dockerfile (no network needed inside the build).

    After a build, older ``nanoclaw-agent`` images are removed (those a container uses stay).
    """
    from nanoclaw.errors import NanoclawError

    started = time.monotonic()
    builder = _builder()
    tag = builder.tag()
    if not quiet_if_current:
        console.print(f"==> agent image {tag}")
    try:
        result = builder.build(offline_base=offline_base, force=force)
    except NanoclawError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    elapsed = time.monotonic() - started
    if not result.built:
        console.print(f"    ✓ agent image {result.image} is up to date")
        return
    how = {
        "local": f"on the local base {result.base}",
        "pulled": f"on {result.base}, pulled from its registry",
        "debootstrap": f"on {result.base}, made locally with debootstrap (no registry reachable"
        + (" / --offline-base)" if offline_base else ")"),
        "debootstrap (cached)": f"on {result.base}, the locally made debootstrap base",
    }[result.base_source]
    console.print(f"    ✓ built {result.image} {how} in {elapsed:.0f} s")
    _report_prune(builder, keep=result.image)


@image_app.command("prune")
def prune() -> None:
    """Remove agent images of older sources (the current one and those in use stay)."""
    builder = _builder()
    _report_prune(builder, keep=builder.tag())


def _report_prune(builder: ImageBuilder, *, keep: str) -> None:
    result = builder.prune(keep=keep)
    for tag in result.removed:
        console.print(f"    ✓ removed the old image {tag}", highlight=False)
    for tag in result.in_use:
        console.print(f"    · kept {tag}: a container still uses it", highlight=False)
    if not result.removed and not result.in_use:
        console.print("    ✓ no old agent images", highlight=False)


def _builder() -> ImageBuilder:
    import docker
    import docker.errors

    from nanoclaw.cli.context import settings

    s = settings()
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except docker.errors.DockerException as exc:
        err.print(f"[red]error:[/] the Docker daemon does not answer: {exc}")
        err.print(
            "       start Docker (e.g. `sudo dockerd &` or `systemctl start docker`) and retry"
        )
        raise typer.Exit(1) from exc
    return ImageBuilder(
        client=client,
        wheelhouse=s.root / ".wheelhouse",
        base_image=s.base_image,
        debian_mirror=s.debian_mirror,
        progress=lambda line: console.print(f"    {line}", markup=False, highlight=False),
        install_id=s.install_id,
    )
