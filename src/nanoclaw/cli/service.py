"""``nanoclaw service install|uninstall|status`` and ``nanoclaw start|stop|restart|logs``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from nanoclaw.errors import NanoclawError

if TYPE_CHECKING:
    from nanoclaw.service.control import ServiceControl
from nanoclaw.settings import load_settings

service_app = typer.Typer(help="The service that keeps the host running.", no_args_is_help=True)
console = Console(highlight=False)
err = Console(stderr=True, highlight=False)

EXIT_FAILURE = 1
FALLBACK_NOTE = (
    "no service manager is usable here, so a small supervising process restarts the host after "
    "a crash; it does NOT survive a reboot (run `nanoclaw start` after booting)"
)
LOG_TAIL_LINES = 50
FOLLOW_POLL_S = 0.3


def _control() -> ServiceControl:
    from nanoclaw.service.control import ServiceControl

    return ServiceControl(settings=load_settings())


def _fail(exc: NanoclawError) -> typer.Exit:
    err.print(f"[red]error:[/] {exc}")
    return typer.Exit(EXIT_FAILURE)


@service_app.command("install")
def install(
    start: Annotated[bool, typer.Option("--start/--no-start", help="Start it now.")] = True,
) -> None:
    """Install the service for this machine (systemd, launchd, or the fallback supervisor)."""
    from nanoclaw.service.manager import ManagerKind

    control = _control()
    try:
        installed = control.install()
        state = control.restart() if start else None
    except NanoclawError as exc:
        raise _fail(exc) from exc
    if installed.kind is ManagerKind.FALLBACK:
        console.print(f"Service: fallback supervisor ({installed.reason}).")
        console.print(f"[yellow]Note:[/] {FALLBACK_NOTE}.")
    else:
        console.print(
            f"Service: {installed.kind.value} ({installed.reason}): {installed.unit_path}"
        )
    if state is not None:
        console.print(f"Host running (pid {state.pid}).")


@service_app.command("uninstall")
def uninstall() -> None:
    """Stop the host and remove the service definition."""
    try:
        installed = _control().uninstall()
    except NanoclawError as exc:
        raise _fail(exc) from exc
    if installed is None:
        console.print("No service was installed; the host is stopped.")
    else:
        console.print(f"Removed the {installed.kind.value} service; the host is stopped.")


@service_app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Which manager keeps the host up, whether it survives a reboot, and the breaker state."""
    data = _control().status()
    if as_json:
        print(json.dumps(data, indent=2))
        return
    installed = data["installed"]
    if installed is None:
        console.print(
            f"Service: not installed (here it would be {data['would_install']}: {data['reason']})"
        )
    else:
        console.print(
            f"Service: {installed} ({data['reason']})"
            + (f", {data['unit']}" if data["unit"] else "")
        )
    console.print(f"Survives a reboot: {'yes' if data['survives_reboot'] else 'no'}")
    console.print(
        f"Supervisor pid: {data['supervisor_pid'] or '-'}   host pid: {data['host_pid'] or '-'}"
    )
    breaker = data["breaker"]
    assert isinstance(breaker, dict)
    console.print(
        f"Start-up breaker: {breaker['crashes_last_hour']} crash(es) in the last hour"
        + (f", waiting {breaker['waiting_s']:g} s" if breaker["waiting_s"] else "")
    )


@service_app.command("supervise", hidden=True)
def supervise(
    pid_file: Annotated[Path, typer.Option(help="The supervisor's pid file.")],
) -> None:
    """Run the fallback supervisor in the foreground (``nanoclaw start`` runs it detached)."""
    from nanoclaw.service.control import host_argv
    from nanoclaw.service.supervise import main

    settings = load_settings()
    raise typer.Exit(
        main(
            host_argv(settings),
            out_file=settings.logs_path / "host.out",
            pid_file=pid_file.resolve(),
            log_file=settings.logs_path / "supervisor.log",
        )
    )


def start() -> None:
    """Start the host in the background (under the installed service, else the supervisor)."""
    control = _control()
    try:
        state = control.start()
    except NanoclawError as exc:
        raise _fail(exc) from exc
    console.print(
        f"Host running (pid {state.pid}, {state.provider} model, runtime {state.runtime})."
    )


def stop() -> None:
    """Stop the host (and its supervisor)."""
    try:
        was = _control().stop()
    except NanoclawError as exc:
        raise _fail(exc) from exc
    console.print("Host stopped." if was else "Host was not running.")


def restart() -> None:
    """Restart the host now (skipping any start-up breaker wait) so it reads current settings."""
    try:
        state = _control().restart()
    except NanoclawError as exc:
        raise _fail(exc) from exc
    console.print(f"Host restarted (pid {state.pid}).")


def logs(
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep printing new lines.")
    ] = False,
    lines: Annotated[
        int, typer.Option("-n", "--lines", help="How many lines to show.")
    ] = LOG_TAIL_LINES,
) -> None:
    """Show the host's log (logs/host.log); -f follows it."""
    path = load_settings().logs_path / "host.log"
    if not path.exists():
        err.print(f"no log yet at {path}")
        if not follow:
            raise typer.Exit(EXIT_FAILURE)
    position = 0
    if path.exists():
        data = path.read_bytes()
        tail = data.splitlines()[-lines:] if lines > 0 else []
        for line in tail:
            print(line.decode(errors="replace"))
        position = len(data)
    if not follow:
        return
    try:
        while True:
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                size = 0
            if size < position:  # truncated or replaced
                position = 0
            if size > position:
                with path.open("rb") as handle:
                    handle.seek(position)
                    chunk = handle.read()
                position += len(chunk)
                print(chunk.decode(errors="replace"), end="", flush=True)
            time.sleep(FOLLOW_POLL_S)
    except KeyboardInterrupt:
        return
