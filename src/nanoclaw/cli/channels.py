"""``nanoclaw channels add slack|telegram|discord|whatsapp``: check, store, pair the operator, welcome.

The credentials are checked against the platform (``auth.test`` / ``getMe`` / Discord's
``/users/@me`` and the app's Message Content intent flag) and stored in
``.env`` (0600; printed only masked). When no owner exists yet, a one-time pairing code is
issued: the operator sends it to the bot in a private chat and becomes owner, that DM is
wired to the agent, and the agent's welcome comes back through the normal pipeline. A running
host whose settings differ from the new ones (the new credentials) is restarted first; with no
host running, the command runs one in-process until the welcome is delivered. The channels and
their credentials are data: ``nanoclaw.setup.channel_options``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import select

from nanoclaw.errors import NanoclawError
from nanoclaw.settings import Settings, load_settings
from nanoclaw.setup.channel_options import DISCORD, check_discord, check_slack, check_telegram
from nanoclaw.setup.envfile import env_file_path, store_env

app = typer.Typer(
    help="Chat channels: add Slack, Telegram, Discord or WhatsApp.", no_args_is_help=True
)
console = Console()
err = Console(stderr=True)

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 4
PLAIN_VALUES = frozenset(
    {"NANOCLAW_SLACK_MODE", "NANOCLAW_WHATSAPP_ENABLED", "NANOCLAW_WHATSAPP_OWN_NUMBER"}
)


def mask(secret: str) -> str:
    """``1234…oken``: enough to recognise a credential, never enough to use it."""
    from nanoclaw.setup.credential import mask as _mask

    return _mask(secret)


# -- pairing ---------------------------------------------------------------------------------------
async def run_pairing(
    settings: Settings, channel: str, since: str, timeout_s: float
) -> dict[str, str]:
    """Run a host until the code arrives and the agent's welcome is delivered."""
    from nanoclaw.channels.pairing import PAIRING_FILE, PairingCodes
    from nanoclaw.host import build_host
    from nanoclaw.routing.planner import routed_id

    codes = PairingCodes(path=settings.data_path / PAIRING_FILE)
    host = build_host(settings)
    done: set[str] = set()

    async def turn_done(_session: str, ids: frozenset[str]) -> None:
        done.update(ids)

    host.delivery.on_turn_done(turn_done)
    await host.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            results = codes.results(channel, since=since)
            if results:
                result = results[-1]
                welcome = routed_id(
                    str(result["channel_type"]),
                    str(result["platform_id"]),
                    str(result["message_id"]),
                    str(result["agent_group_id"]),
                )
                if welcome in done:
                    return {k: str(v) for k, v in result.items()}
            await asyncio.sleep(0.1)
        raise TimeoutError
    finally:
        await host.stop()


async def wait_for_result(
    settings: Settings, channel: str, since: str, timeout_s: float
) -> dict[str, str]:
    from nanoclaw.channels.pairing import PAIRING_FILE, PairingCodes

    codes = PairingCodes(path=settings.data_path / PAIRING_FILE)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        results = codes.results(channel, since=since)
        if results:
            return {k: str(v) for k, v in results[-1].items()}
        await asyncio.sleep(0.5)
    raise TimeoutError


@app.command("add")
def add(
    channel: Annotated[str, typer.Argument(help="slack, telegram, discord or whatsapp")],
    token: Annotated[
        str | None, typer.Option(help="Telegram (from BotFather) or Discord bot token.")
    ] = None,
    bot_token: Annotated[str | None, typer.Option(help="Slack bot token (xoxb-…).")] = None,
    app_token: Annotated[
        str | None, typer.Option(help="Slack app-level token (xapp-…), Socket Mode.")
    ] = None,
    signing_secret: Annotated[
        str | None, typer.Option(help="Slack signing secret (HTTP mode).")
    ] = None,
    mode: Annotated[str, typer.Option(help="Slack: socket (default) or http.")] = "socket",
    agent: Annotated[
        str | None, typer.Option(help="Agent to wire the DM to (default: the first).")
    ] = None,
    pair: Annotated[
        bool | None,
        typer.Option("--pair/--no-pair", help="Pair your DM (default: unless paired)."),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait for the pairing code to arrive.")
    ] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the pairing code.")] = 600.0,
    phone: Annotated[
        str | None, typer.Option(help="WhatsApp: link by pairing code for this number, not QR.")
    ] = None,
    shared_number: Annotated[
        bool,
        typer.Option(
            help="WhatsApp: the assistant shares your number (v1 ASSISTANT_HAS_OWN_NUMBER=false)."
        ),
    ] = False,
    relink: Annotated[bool, typer.Option(help="WhatsApp: link again (a new device).")] = False,
) -> None:
    """Add a chat channel: check its credentials, store them in .env, pair your DM, say hello."""
    from nanoclaw.admin.bootstrap import initialize
    from nanoclaw.channels.pairing import PAIRING_FILE, PairingCodes
    from nanoclaw.contract.timeutil import now_iso
    from nanoclaw.db.central import CentralDB
    from nanoclaw.db.models import UserRole
    from nanoclaw.db.repository import Repository
    from nanoclaw.service.current import settings_differ
    from nanoclaw.service.probe import host_running

    settings = load_settings()
    if channel == "telegram":
        token = token or (
            settings.telegram_bot_token.get_secret_value() if settings.telegram_bot_token else None
        )
        if not token:
            token = typer.prompt("Telegram bot token (from @BotFather)", hide_input=True)
        values = {"NANOCLAW_TELEGRAM_BOT_TOKEN": token}
        check = check_telegram(settings, values)
    elif channel == "slack":
        if mode not in ("socket", "http"):
            err.print(f"[red]error:[/] unknown Slack mode {mode!r}")
            raise typer.Exit(EXIT_USAGE)
        bot_token = bot_token or (
            settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
        )
        bot_token = bot_token or typer.prompt("Slack bot token (xoxb-…)", hide_input=True)
        values = {"NANOCLAW_SLACK_BOT_TOKEN": bot_token, "NANOCLAW_SLACK_MODE": mode}
        if mode == "socket":
            app_token = app_token or (
                settings.slack_app_token.get_secret_value() if settings.slack_app_token else None
            )
            app_token = app_token or typer.prompt("Slack app-level token (xapp-…)", hide_input=True)
            values["NANOCLAW_SLACK_APP_TOKEN"] = app_token
        else:
            signing_secret = signing_secret or typer.prompt("Slack signing secret", hide_input=True)
            values["NANOCLAW_SLACK_SIGNING_SECRET"] = signing_secret
        check = check_slack(
            settings,
            {
                k: v
                for k, v in values.items()
                if k != "NANOCLAW_SLACK_APP_TOKEN" or mode == "socket"
            },
        )
    elif channel == "discord":
        token = token or (
            settings.discord_bot_token.get_secret_value() if settings.discord_bot_token else None
        )
        token = token or typer.prompt(DISCORD.fields[0].label, hide_input=True)
        values = {"NANOCLAW_DISCORD_BOT_TOKEN": token}
        check = check_discord(settings, values)
    elif channel == "whatsapp":
        from nanoclaw.cli.whatsapp_link import whatsapp_link

        values, check = whatsapp_link(settings, phone=phone, shared=shared_number, relink=relink)
    else:
        err.print(
            f"[red]error:[/] unknown channel {channel!r} (slack, telegram, discord or whatsapp)"
        )
        raise typer.Exit(EXIT_USAGE)

    try:
        bot_name = asyncio.run(check)
    except NanoclawError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_FAILURE) from exc
    if channel == "whatsapp":
        console.print(f"WhatsApp linked as {bot_name}.")
    else:
        console.print(f"{channel.title()} credentials accepted (bot @{bot_name}).")
    env_path = env_file_path(settings)
    store_env(env_path, values)
    for key, value in values.items():
        shown = value if key in PLAIN_VALUES else mask(value)
        console.print(f"Stored {key}={shown} in {env_path}")

    report = initialize(settings, agent_name=None)
    db = CentralDB(path=settings.central_db_path, migrations_root=settings.migrations_path)
    try:
        repo = Repository(db)
        group = repo.agent_group(agent or report.agent_folder)
        with db.session() as s:
            paired = s.scalar(
                select(UserRole.user_id)
                .where(UserRole.role == "owner", UserRole.user_id.startswith(f"{channel}:"))
                .limit(1)
            )
    except NanoclawError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_FAILURE) from exc
    finally:
        db.dispose()
    if pair is None:
        pair = paired is None
    if not pair:
        console.print(f"Your {channel} DM is paired already ({paired}); use --pair to pair again.")
        return
    since = now_iso()
    code = PairingCodes(path=settings.data_path / PAIRING_FILE).issue(channel, group.id)
    where = (
        f"https://t.me/{bot_name}?start={code.replace('-', '')} (or send {code} to @{bot_name})"
        if channel == "telegram"
        else DISCORD.where_to_send(bot_name, code)
        if channel == "discord"
        else f"a direct message to @{bot_name}: {code}"
    )
    if channel == "whatsapp":
        from nanoclaw.setup.channel_options import whatsapp_where

        where = whatsapp_where(bot_name, code)
    console.print(f"Pairing code for {group.name}: [bold]{code}[/] (valid 10 minutes)")
    console.print(f"Prove it's you: open {where}", soft_wrap=True)
    if not wait:
        return
    fresh = load_settings()  # with the credentials just stored
    try:
        if host_running(fresh):
            from nanoclaw.service.current import restart_if_changed

            if settings_differ(fresh):
                console.print("Restarting the host so it uses the new credentials…")
                restart_if_changed(fresh)
            console.print("Waiting for the code…")
            result = asyncio.run(wait_for_result(fresh, channel, since, timeout))
        else:
            console.print("Waiting for the code…")
            result = asyncio.run(run_pairing(fresh, channel, since, timeout))
    except NanoclawError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_FAILURE) from exc
    except TimeoutError:
        err.print(
            f"[red]error:[/] no pairing code arrived within {timeout:g} s; run the command again"
        )
        raise typer.Exit(EXIT_TIMEOUT) from None
    console.print(
        f"Paired {result['user_id']} as {result['role']}; the DM is wired to {group.name} "
        "and the welcome was sent."
    )
