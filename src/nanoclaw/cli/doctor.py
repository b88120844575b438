"""``nanoclaw doctor``: which sandbox runtime is in use and why, and what else the host needs."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import Annotated

import typer
from rich.console import Console

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
    checks += host_checks(s)
    try:
        allowlist = load_allowlist(s.mount_allowlist_path, project_root=s.root)
        if allowlist.source is None:
            detail = f"{s.mount_allowlist_path} absent: extra mounts are refused"
        else:
            detail = f"{allowlist.source}: {len(allowlist.roots)} allowed root(s)"
        checks.append(Check("mount allowlist", True, detail, required=False))
    except ConfigError as exc:
        checks.append(Check("mount allowlist", False, str(exc), required=False))
    checks += channel_checks(s)
    return runtime, reason, checks


def channel_checks(s: Settings) -> list[Check]:
    """One row per configured chat channel: the running host's link state where it reports one,
    else the channel's credentials tried against the platform (never both for one channel)."""
    from nanoclaw.channels.whatsapp.diagnose import offline_check

    linked = channel_link_checks(s)
    reported = {check.name for check in linked}
    checks = linked + channel_credential_checks(s, skip=reported)
    whatsapp = offline_check(s) if "channel whatsapp" not in reported else None
    if whatsapp is not None:
        checks.append(Check("channel whatsapp", *whatsapp))
    return checks


# States that say nothing about the link: no credentials, or no live report from a host.
_NOT_A_LINK_STATE = ("not configured", "skipped", "configured", "unknown")


def channel_link_checks(s: Settings) -> list[Check]:
    """One check per chat channel the running host reports a link state for."""
    from nanoclaw.cli.status import channel_states

    found: list[Check] = []
    for row in channel_states(s):
        state = str(row.get("state") or "")
        if row["channel"] == "cli" or state in _NOT_A_LINK_STATE:
            continue
        detail = f"{state}: {row.get('detail')}" if row.get("detail") else state
        if state == "conflict":
            detail += " — stop the other bot instance or webhook using this token"
        if "4014" in detail and "Message Content" not in detail:  # cut short in the state file
            detail += " — turn on the bot's Message Content intent (Developer Portal)"
        found.append(Check(f"channel {row['channel']}", state == "connected", detail, False))
    return found


def host_checks(s: Settings) -> list[Check]:
    """The running host, its settings and one real model request."""
    from nanoclaw.service.current import running_state
    from nanoclaw.settings import effective_settings_hash
    from nanoclaw.setup.modelcheck import check_model

    checks: list[Check] = []
    state = running_state(s)
    if state is None:
        checks.append(Check("host", False, "not running: start it with `nanoclaw start`"))
    elif state.settings_hash != effective_settings_hash(s):
        checks.append(
            Check("host", False, f"pid {state.pid} runs older settings: run `nanoclaw restart`")
        )
    else:
        checks.append(Check("host", True, f"pid {state.pid}, current settings"))
    provider = s.effective_provider
    if provider == "mock":
        checks.append(Check("model", True, "the mock model (no credential; replies say so)"))
    elif not s.has_model_credential:
        checks.append(
            Check(
                "model",
                False,
                "no credential but the anthropic provider is selected: "
                "run `bash nanoclaw.sh` to enter one",
            )
        )
    elif state is None:
        checks.append(Check("model", False, "cannot try the credential: the host is not running"))
    else:
        result = check_model(state)
        detail = result.detail + (f" — {result.hint}" if result.hint else "")
        checks.append(
            Check("model", result.ok, f"one request through the credential proxy: {detail}")
        )
    return checks


def channel_credential_checks(s: Settings, *, skip: Collection[str] = ()) -> list[Check]:
    """Each configured channel's credentials (but those named in ``skip``), tried against the
    platform once."""
    import asyncio

    from nanoclaw.errors import NanoclawError
    from nanoclaw.setup.channel_options import CHANNEL_OPTIONS, configured_values

    checks: list[Check] = []
    for option in CHANNEL_OPTIONS:
        values = configured_values(option, s)
        if not values or f"channel {option.name}" in skip:
            continue
        primary = option.fields[0].env_key  # the rest may be optional (Slack in HTTP mode)
        if primary not in values:
            checks.append(Check(f"channel {option.name}", False, f"incomplete: set {primary}"))
            continue
        try:
            bot = asyncio.run(option.check(s, values))
        except NanoclawError as exc:
            fix = f" — enter new credentials with `nanoclaw channels add {option.name}`"
            if getattr(exc, "names_its_fix", False):  # e.g. Discord's Message Content intent
                fix = ""
            checks.append(Check(f"channel {option.name}", False, f"{exc}{fix}"))
        except Exception as exc:  # unreachable platform: name it, never crash the report
            checks.append(
                Check(
                    f"channel {option.name}",
                    False,
                    f"could not reach {option.name} ({type(exc).__name__}) — check the network",
                )
            )
        else:
            checks.append(Check(f"channel {option.name}", True, f"connected as @{bot}"))
    return checks


def settings_sources(s: Settings) -> list[dict[str, str]]:
    from nanoclaw.setup.envfile import env_file_path
    from nanoclaw.setup.sources import REPORTED_FIELDS, source_of

    env_file = env_file_path(s)
    rows = []
    for name in REPORTED_FIELDS:
        src = source_of(name, s, env_file=env_file)
        rows.append(
            {
                "setting": name,
                "value": src.shown,
                "source": src.origin.value,
                "from": src.name or "",
            }
        )
    return rows


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
    """Report each setting's source, the runtime, the image, the host, the model and channels."""
    from nanoclaw.cli.context import settings

    runtime, reason, checks = gather()
    sources = settings_sources(settings())
    healthy = runtime is not None and all(c.ok for c in checks if c.required)
    if as_json:
        data = {
            "runtime": runtime,
            "reason": reason,
            "healthy": healthy,
            "checks": [asdict(c) for c in checks],
            "settings": sources,
        }
        print(json.dumps(data, indent=2))
    else:
        console.print("settings (flags > NANOCLAW_* > ANTHROPIC_* > .env > default):")
        for row in sources:
            where = row["source"] + (f" {row['from']}" if row["from"] else "")
            console.print(f"  {row['setting']}: {row['value']} ({where})", highlight=False)
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
