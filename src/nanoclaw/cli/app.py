"""The ``nanoclaw`` typer application: run, chat, status, init, wire (more resources register here)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from nanoclaw.admin.bootstrap import operator_handle
from nanoclaw.cli.context import _State, settings
from nanoclaw.errors import NanoclawError

app = typer.Typer(
    name="nanoclaw",
    help="NanoClaw: a personal AI assistant whose agents run sandboxed.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err = Console(stderr=True)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_HOST_DOWN = 3
EXIT_NO_REPLY = 4
EXIT_ERROR_REPLY = 5  # a reply carried a structured error (the turn could not be answered)


def _version(value: bool) -> None:
    if value:
        from nanoclaw import __version__

        print(f"nanoclaw {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """NanoClaw: a personal AI assistant whose agents run sandboxed."""


# The settings live in cli.context so command modules never import this module back.
__all__ = ["_State", "settings"]


def fail(message: str, code: int = EXIT_FAILURE) -> typer.Exit:
    err.print(f"[red]error:[/] {message}")
    return typer.Exit(code)


@app.command()
def run(
    log_file: Annotated[
        Path | None, typer.Option(help="Write the log here instead of stderr.")
    ] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
    pid_file: Annotated[
        Path | None,
        typer.Option(help="Record this process's pid here (start/stop check it against argv)."),
    ] = None,
) -> None:
    """Run the host in the foreground until SIGINT or SIGTERM."""
    from nanoclaw.logging_setup import configure_logging
    from nanoclaw.service.hostrun import run_host

    configure_logging(level=log_level.upper(), log_file=log_file)
    try:
        asyncio.run(run_host(settings(), pid_file=pid_file.resolve() if pid_file else None))
    except NanoclawError as exc:
        raise fail(str(exc)) from exc


@app.command()
def chat(
    message: Annotated[
        str | None,
        typer.Option(
            "-m",
            "--message",
            help="Send one message ('-' reads it from stdin), print the reply, exit.",
        ),
    ] = None,
    chat_name: Annotated[
        str, typer.Option("--chat", help="Which terminal chat (each is its own conversation).")
    ] = "local",
    sender: Annotated[
        str | None, typer.Option("--as", help="Sender handle (default: your user name).")
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for each turn to end (-m and piped input).")
    ] = 120.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print reply frames as JSON lines (-m and piped input).")
    ] = False,
    reconnect_for: Annotated[
        float,
        typer.Option(help="Interactive: seconds to wait for a host that went away before exit 3."),
    ] = 30.0,
) -> None:
    """Chat with your agent from the terminal (interactive on a TTY; scripts: -m, pipes, --json)."""
    from nanoclaw.channels.cli.client import (
        HostGoneError,
        HostNotRunningError,
        NoReplyError,
        NotDeliveredError,
        send_each,
    )
    from nanoclaw.channels.cli.protocol import MAX_TEXT_CHARS, validate_chat, validate_handle
    from nanoclaw.errors import ValidationError

    handle = sender or operator_handle()
    try:
        validate_chat(chat_name)
        validate_handle(handle)
    except ValidationError as exc:
        raise fail(str(exc), EXIT_USAGE) from exc
    socket_path = settings().cli_socket
    if message is None and sys.stdin.isatty():
        from nanoclaw.channels.cli.chat_app import run_chat  # prompt_toolkit: TTY only

        history = settings().data_path / "cli-history" / f"{chat_name}.history"
        try:
            code = asyncio.run(
                run_chat(
                    socket_path,
                    chat=chat_name,
                    sender=handle,
                    history_path=history,
                    reconnect_for_s=reconnect_for,
                )
            )
        except HostNotRunningError as exc:
            raise fail(str(exc), EXIT_HOST_DOWN) from exc
        raise typer.Exit(code)
    if message == "-":
        texts = [sys.stdin.read().removesuffix("\n")]
    elif message is not None:
        texts = [message]
    else:  # piped: each non-empty line is one message, each waiting for its turn to end
        texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    for text in texts:
        if not text.strip():
            raise fail("the message is empty", EXIT_USAGE)
        if len(text) > MAX_TEXT_CHARS:
            raise fail(f"the message is longer than {MAX_TEXT_CHARS} characters", EXIT_USAGE)
    try:
        exchanges = asyncio.run(
            send_each(socket_path, chat=chat_name, sender=handle, texts=texts, timeout_s=timeout)
        )
    except (HostNotRunningError, HostGoneError) as exc:
        raise fail(str(exc), EXIT_HOST_DOWN) from exc
    except NoReplyError as exc:
        raise fail(str(exc), EXIT_NO_REPLY) from exc
    except NotDeliveredError as exc:
        raise fail(f"{exc} ({exc.reason})", EXIT_FAILURE) from exc
    except NanoclawError as exc:
        raise fail(str(exc)) from exc
    for exchange in exchanges:
        for reply in exchange.replies:
            print(json.dumps(reply, ensure_ascii=False) if as_json else reply.get("text", ""))
    if any(exchange.failed for exchange in exchanges):
        raise typer.Exit(EXIT_ERROR_REPLY)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show agent groups, wirings, sessions and running runners."""
    from nanoclaw.cli.status import gather, render

    data = gather(settings())
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        render(data, console)


@app.command()
def init(
    agent_name: Annotated[str | None, typer.Option(help="Name of the first agent.")] = None,
) -> None:
    """Create the first agent and wire the local terminal chat to it (idempotent)."""
    from nanoclaw.admin.bootstrap import initialize

    try:
        report = initialize(settings(), agent_name=agent_name)
    except NanoclawError as exc:
        raise fail(str(exc)) from exc
    verb = "Created" if report.created_agent else "Using"
    console.print(f"{verb} agent [bold]{report.agent_name}[/] (groups/{report.agent_folder}/)")
    if report.wired_local_chat:
        console.print("Wired the local terminal chat (cli/local) to it.")
    if report.owner_user_id:
        console.print(f"You ({report.owner_user_id}) are the owner of this install.")
    if report.provider == "mock":
        console.print(
            "[yellow]No model credential configured: the agent uses the mock model and says so.[/] "
            "Set ANTHROPIC_API_KEY in .env to use Claude."
        )


@app.command()
def wire(
    chat_name: Annotated[str, typer.Argument(help="The chat's platform id (for cli: its name).")],
    agent: Annotated[str, typer.Argument(help="Agent name, folder or id.")],
    channel: Annotated[str, typer.Option(help="Channel type of the chat.")] = "cli",
    engage: Annotated[str, typer.Option(help="pattern, mention or mention-sticky.")] = "pattern",
    pattern: Annotated[
        str | None, typer.Option(help="Regex for engage=pattern ('.' = always).")
    ] = ".",
    session_mode: Annotated[
        str, typer.Option(help="shared, per-thread or agent-shared.")
    ] = "shared",
    accumulate: Annotated[
        bool, typer.Option(help="Keep non-engaging messages as context.")
    ] = False,
    priority: Annotated[int, typer.Option(help="Higher wirings are considered first.")] = 0,
    policy: Annotated[
        str | None,
        typer.Option(
            help="Unknown senders: strict, request_approval or public (cli default: public)."
        ),
    ] = None,
) -> None:
    """Wire a chat to an agent (creating the chat's record if needed)."""
    from nanoclaw.admin.service import check_wiring_options
    from nanoclaw.cli.admin_resources import OPERATOR, admin_service
    from nanoclaw.errors import ValidationError

    try:
        check_wiring_options(engage, pattern if engage == "pattern" else None, session_mode)
    except ValidationError as exc:
        raise fail(str(exc), EXIT_USAGE) from exc
    if policy is None and channel == "cli":
        policy = "public"  # the CLI socket is private to the operator's own account
    if policy not in (None, "strict", "request_approval", "public"):
        raise fail(f"unknown policy {policy!r}", EXIT_USAGE)
    # The same checks and effects as the /wire chat command: one implementation.
    with admin_service() as admin:
        group = admin.agent(agent)
        mg = admin.repo.ensure_messaging_group(
            channel_type=channel,
            platform_id=chat_name,
            name=chat_name,
            unknown_sender_policy=policy or "strict",
        )
        if policy is not None and mg.unknown_sender_policy != policy:
            admin.repo.set_unknown_sender_policy(mg.id, policy)
        admin.wire(
            OPERATOR,
            mg,
            group,
            engage_mode=engage,
            engage_pattern=pattern,
            session_mode=session_mode,
            ignored_message_policy="accumulate" if accumulate else "drop",
            priority=priority,
        )
    console.print(f"Wired {channel}/{chat_name} to {group.name}.")


from nanoclaw.cli.doctor import doctor as _doctor  # noqa: E402
from nanoclaw.cli.image import image_app  # noqa: E402

app.add_typer(image_app, name="image")
from nanoclaw.cli.tasks import app as tasks_app  # noqa: E402

app.add_typer(tasks_app, name="tasks")
from nanoclaw.cli.messages import app as messages_app  # noqa: E402

app.add_typer(messages_app, name="messages")
from nanoclaw.cli.usage import app as usage_app  # noqa: E402

app.add_typer(usage_app, name="usage")
app.command("doctor")(_doctor)
from nanoclaw.cli.channels import app as channels_app  # noqa: E402

app.add_typer(channels_app, name="channels")
from nanoclaw.cli.import_cmd import import_install  # noqa: E402

app.command(name="import")(import_install)
from nanoclaw.cli import admin_resources as _admin  # noqa: E402

_admin.add_channel_commands(channels_app)
from nanoclaw.cli.agent_extensions import mcp_app, packages_app, skills_app  # noqa: E402

_admin.agents_app.add_typer(mcp_app, name="mcp")
_admin.agents_app.add_typer(skills_app, name="skills")
_admin.agents_app.add_typer(packages_app, name="packages")
app.add_typer(_admin.agents_app, name="agents")
app.add_typer(_admin.wirings_app, name="wirings")
app.add_typer(_admin.users_app, name="users")
app.add_typer(_admin.roles_app, name="roles")
app.add_typer(_admin.members_app, name="members")
app.add_typer(_admin.sessions_app, name="sessions")
app.add_typer(_admin.approvals_app, name="approvals")
app.add_typer(_admin.dropped_app, name="dropped")
from nanoclaw.cli import agent_resources as _agent_resources  # noqa: E402

app.add_typer(_agent_resources.destinations_app, name="destinations")
app.add_typer(_agent_resources.mounts_app, name="mounts")


from nanoclaw.cli import service as _service  # noqa: E402

app.add_typer(_service.service_app, name="service")
app.command("start")(_service.start)
app.command("stop")(_service.stop)
app.command("restart")(_service.restart)
app.command("logs")(_service.logs)
from nanoclaw.cli.setup import setup as _setup  # noqa: E402

app.command("setup")(_setup)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
