"""``nanoclaw doctor``: which sandbox runtime is in use and why, and what else the host needs."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from nanoclaw.settings import Settings

console = Console()


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True


def gather() -> tuple[str | None, str, list[Check]]:
    """(runtime in use or None, why, checks). Never prints or returns a secret."""
    from nanoclaw.cli.context import settings
    from nanoclaw.errors import ConfigError
    from nanoclaw.runtime.bwrap import bwrap_works
    from nanoclaw.runtime.image import agent_image
    from nanoclaw.runtime.mounts import load_allowlist
    from nanoclaw.runtime.select import choose_runtime_name, docker_answers

    s = settings()
    checks: list[Check] = []
    docker_ok, docker_why = docker_answers()
    checks.append(Check("docker", docker_ok, docker_why, required=False))
    bwrap_ok, bwrap_why = bwrap_works()
    checks.append(Check("bubblewrap", bwrap_ok, bwrap_why, required=False))
    try:
        runtime, reason = choose_runtime_name(
            s,
            docker_probe=lambda: (docker_ok, docker_why),
            bwrap_probe=lambda: (bwrap_ok, bwrap_why),
        )
    except ConfigError as exc:
        runtime, reason = None, str(exc)
    if runtime == "docker":
        image = agent_image(configured=s.agent_image, base_image=s.base_image)
        present = _image_present(image) if docker_ok else False
        checks.append(
            Check(
                "agent image",
                present,
                f"{image} is built"
                if present
                else f"{image} is missing: run `nanoclaw image build`",
            )
        )
    if runtime == "process":
        checks.append(
            Check("isolation", False, "the process runtime gives NO isolation (development only)")
        )
    provider = s.effective_provider
    if s.has_model_credential:
        cred = "configured; runners reach the model only through the credential proxy"
    elif provider == "anthropic":
        cred = "MISSING but the anthropic provider is selected: no runner will start"
    else:
        cred = "none: agents use the mock model"
    checks.append(Check("model credential", s.has_model_credential or provider == "mock", cred))
    checks.append(Check("credential proxy", True, f"{s.model_proxy} transport", required=False))
    try:
        allowlist = load_allowlist(s.mount_allowlist_path, project_root=s.root)
        if allowlist.source is None:
            detail = f"{s.mount_allowlist_path} absent: extra mounts are refused"
        else:
            detail = f"{allowlist.source}: {len(allowlist.roots)} allowed root(s)"
        checks.append(Check("mount allowlist", True, detail, required=False))
    except ConfigError as exc:
        checks.append(Check("mount allowlist", False, str(exc), required=False))
    checks.extend(channel_checks(s))
    return runtime, reason, checks


def channel_checks(s: Settings) -> list[Check]:
    """One check per configured chat channel, from the running host's real link state."""
    from nanoclaw.cli.status import channel_states

    found: list[Check] = []
    for row in channel_states(s):
        state = str(row.get("state") or "")
        if row["channel"] == "cli" or state in ("not configured", "skipped"):
            continue
        detail = f"{state}: {row.get('detail')}" if row.get("detail") else state
        if state == "conflict":
            detail += " — stop the other bot instance or webhook using this token"
        found.append(Check(f"channel {row['channel']}", state == "connected", detail, False))
    return found


def _image_present(image: str) -> bool:
    import docker
    import docker.errors

    try:
        client = docker.from_env(timeout=5)
        client.images.get(image)
    except docker.errors.DockerException:
        return False
    return True


def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Report the sandbox runtime in use and why, the agent image, credentials and mounts."""
    runtime, reason, checks = gather()
    healthy = runtime is not None and all(c.ok for c in checks if c.required)
    if as_json:
        data = {
            "runtime": runtime,
            "reason": reason,
            "healthy": healthy,
            "checks": [asdict(c) for c in checks],
        }
        print(json.dumps(data, indent=2))
    else:
        if runtime is None:
            console.print(f"[red]✗ no sandbox runtime[/]: {reason}")
        else:
            console.print(f"runtime: [bold]{runtime}[/] ({reason})")
        for check in checks:
            mark = (
                "[green]✓[/]" if check.ok else ("[red]✗[/]" if check.required else "[yellow]-[/]")
            )
            console.print(f"  {mark} {check.name}: {check.detail}", highlight=False)
    if not healthy:
        raise typer.Exit(1)
