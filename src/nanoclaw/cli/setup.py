"""``nanoclaw setup``: the onboarding that ``bash nanoclaw.sh`` hands over to (see setup/flow.py)."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from nanoclaw.setup.credential import CredentialFlags, CredentialKind


def setup(
    api_key: Annotated[str | None, typer.Option(help="Anthropic API key.")] = None,
    base_url: Annotated[
        str | None, typer.Option(help="Custom endpoint (gateway, Anthropic-compatible server).")
    ] = None,
    auth_token: Annotated[str | None, typer.Option(help="Bearer token for --base-url.")] = None,
    mock: Annotated[
        bool, typer.Option("--mock", help="Keep the mock model (no credential).")
    ] = False,
    timezone: Annotated[
        str | None, typer.Option(help="IANA time zone, e.g. Europe/Berlin.")
    ] = None,
    owner_name: Annotated[
        str | None, typer.Option(help="Your name, as the assistant calls you.")
    ] = None,
    agent_name: Annotated[str | None, typer.Option(help="Your assistant's name.")] = None,
    channel: Annotated[
        str | None,
        typer.Option(help="First channel: terminal, telegram, slack, discord or whatsapp."),
    ] = None,
    telegram_token: Annotated[str | None, typer.Option(help="Telegram bot token.")] = None,
    slack_bot_token: Annotated[str | None, typer.Option(help="Slack bot token (xoxb-…).")] = None,
    slack_app_token: Annotated[str | None, typer.Option(help="Slack app token (xapp-…).")] = None,
    discord_token: Annotated[str | None, typer.Option(help="Discord bot token.")] = None,
    non_interactive: Annotated[
        bool,
        typer.Option("--non-interactive", help="Ask nothing (the default without a terminal)."),
    ] = False,
    no_chat: Annotated[
        bool, typer.Option("--no-chat", help="Do not open a chat at the end.")
    ] = False,
    check_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the check reply.")
    ] = 90.0,
    pair_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for a pairing code.")
    ] = 600.0,
) -> None:
    """Set up this install: credential, time zone, you, the service, checks, first channel."""
    from nanoclaw.service.control import nanoclaw_bin
    from nanoclaw.setup.flow import Setup, SetupOptions

    if (
        auth_token
        and not base_url
        and not os.environ.get("ANTHROPIC_BASE_URL")
        and not os.environ.get("NANOCLAW_ANTHROPIC_BASE_URL")
    ):
        typer.echo("error: --auth-token needs --base-url (the endpoint it is for)", err=True)
        raise typer.Exit(2)
    kind = CredentialKind.MOCK if mock else None
    if kind is None and auth_token and not api_key:
        kind = CredentialKind.ENDPOINT
    channel_values = {
        key: value
        for key, value in (
            ("NANOCLAW_TELEGRAM_BOT_TOKEN", telegram_token),
            ("NANOCLAW_SLACK_BOT_TOKEN", slack_bot_token),
            ("NANOCLAW_SLACK_APP_TOKEN", slack_app_token),
            ("NANOCLAW_DISCORD_BOT_TOKEN", discord_token),
        )
        if value
    }
    interactive = not non_interactive and sys.stdin.isatty() and sys.stdout.isatty()
    result = Setup(
        SetupOptions(
            interactive=interactive,
            credential=CredentialFlags(
                kind=kind, api_key=api_key, base_url=base_url, auth_token=auth_token
            ),
            timezone=timezone,
            owner_name=owner_name,
            agent_name=agent_name,
            channel=channel,
            channel_values=channel_values,
            check_timeout_s=check_timeout,
            pair_timeout_s=pair_timeout,
        )
    ).run()
    if result.code == 0 and result.open_chat and not no_chat:
        print("\nOpening a chat (Ctrl-D to leave; reopen any time with: nanoclaw chat)", flush=True)
        binary = str(nanoclaw_bin())
        argv = (
            [binary, "chat"]
            if binary.endswith("nanoclaw")
            else [binary, "-m", "nanoclaw.cli", "chat"]
        )
        os.execv(argv[0], argv)
    raise typer.Exit(result.code)
