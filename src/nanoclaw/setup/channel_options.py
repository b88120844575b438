"""The chat channels setup can offer, as data: each one's credentials, check and pairing hint.

The terminal is always there; every other channel is one ``ChannelOption`` in ``CHANNEL_OPTIONS``.
A channel added later (Discord, WhatsApp) appends its option here and setup and
``nanoclaw channels add`` offer it with no other change.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from nanoclaw.errors import NanoclawError
from nanoclaw.settings import Settings


@dataclass(frozen=True)
class CredentialField:
    env_key: str  # written to .env
    setting: str  # the Settings field that reads it
    label: str  # the question
    flag: str  # the setup flag that answers it
    secret: bool = True


Check = Callable[
    [Settings, dict[str, str]], Coroutine[Any, Any, str]
]  # values by env_key → bot name


@dataclass(frozen=True)
class ChannelOption:
    name: str
    title: str
    fields: tuple[CredentialField, ...]
    check: Check
    where_to_send: Callable[[str, str], str]  # (bot name, code) → where the user sends the code
    fixed: tuple[tuple[str, str], ...] = ()  # extra .env values (not secret)
    requires: str | None = None  # a module from an optional extra (offered by setup)
    install: tuple[str, ...] = ()  # the extra's requirements, for ``pip install``


async def check_telegram(settings: Settings, values: dict[str, str]) -> str:
    from nanoclaw.channels.telegram.api import TelegramApi, TelegramApiError

    api = TelegramApi(
        token=values["NANOCLAW_TELEGRAM_BOT_TOKEN"], base_url=settings.telegram_api_base_url
    )
    try:
        me = await api.call("getMe")
    except TelegramApiError as exc:
        raise NanoclawError(f"Telegram rejected the token: {exc.description}") from None
    finally:
        await api.aclose()
    return str(me.get("username") or "")


async def check_slack(settings: Settings, values: dict[str, str]) -> str:
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    client = AsyncWebClient(
        token=values["NANOCLAW_SLACK_BOT_TOKEN"], base_url=settings.slack_api_base_url
    )
    try:
        auth = await client.auth_test()
        app_token = values.get("NANOCLAW_SLACK_APP_TOKEN")
        if app_token:
            await client.apps_connections_open(app_token=app_token)
    except SlackApiError as exc:
        raise NanoclawError(
            f"Slack rejected the credentials: {exc.response.get('error')}"
        ) from None
    finally:
        if client.session is not None:
            await client.session.close()
    return str(auth.get("user") or "")


async def check_discord(settings: Settings, values: dict[str, str]) -> str:
    """The bot's name; refused when the app lacks the Message Content intent (see ``doctor``)."""
    from nanoclaw.channels.discord.api import DiscordTokenError, check_bot
    from nanoclaw.channels.discord.intents import MessageContentIntentError

    try:
        bot = await check_bot(
            token=values["NANOCLAW_DISCORD_BOT_TOKEN"], api_base_url=settings.discord_api_base_url
        )
    except DiscordTokenError as exc:
        raise NanoclawError(str(exc)) from None
    if not bot.message_content:
        raise MessageContentIntentError(close_code=None)
    return bot.username


TELEGRAM = ChannelOption(
    name="telegram",
    title="Telegram (a bot from @BotFather)",
    fields=(
        CredentialField(
            "NANOCLAW_TELEGRAM_BOT_TOKEN",
            "telegram_bot_token",
            "Telegram bot token (from @BotFather)",
            "--telegram-token",
        ),
    ),
    check=check_telegram,
    where_to_send=lambda bot, code: (
        f"https://t.me/{bot}?start={code.replace('-', '')} (or send {code} to @{bot})"
    ),
)
SLACK = ChannelOption(
    name="slack",
    title="Slack (Socket Mode: a bot token and an app-level token)",
    fields=(
        CredentialField(
            "NANOCLAW_SLACK_BOT_TOKEN",
            "slack_bot_token",
            "Slack bot token (xoxb-…)",
            "--slack-bot-token",
        ),
        CredentialField(
            "NANOCLAW_SLACK_APP_TOKEN",
            "slack_app_token",
            "Slack app-level token (xapp-…)",
            "--slack-app-token",
        ),
    ),
    check=check_slack,
    where_to_send=lambda bot, code: f"a direct message to @{bot}: {code}",
    fixed=(("NANOCLAW_SLACK_MODE", "socket"),),
)


async def check_whatsapp(settings: Settings, values: dict[str, str]) -> str:
    """Link the device (QR code in the terminal); the linked account's JID."""
    from nanoclaw.channels.whatsapp.link import link_session

    return await link_session(settings, show=lambda text: print(text, flush=True))


def whatsapp_where(account: str, code: str) -> str:
    number = account.partition("@")[0]
    return (
        f"a WhatsApp message to +{number} from your phone: {code} (a shared number: send it"
        " in your own chat, “Message yourself”)"
    )


WHATSAPP = ChannelOption(
    name="whatsapp",
    title="WhatsApp (link this machine as a device: QR code; needs the whatsapp extra)",
    fields=(),
    check=check_whatsapp,
    where_to_send=whatsapp_where,
    fixed=(("NANOCLAW_WHATSAPP_ENABLED", "true"),),
    requires="neonize",
    install=("neonize>=0.5.2,<0.6", "segno>=1.6"),
)


DISCORD = ChannelOption(
    name="discord",
    title="Discord (a bot from the Developer Portal, with the Message Content intent)",
    fields=(
        CredentialField(
            "NANOCLAW_DISCORD_BOT_TOKEN",
            "discord_bot_token",
            "Discord bot token (Developer Portal → your app → Bot → Reset Token)",
            "--discord-token",
        ),
    ),
    check=check_discord,
    where_to_send=lambda bot, code: (
        f"a direct message to {bot} (from its profile in a server you share): {code}"
    ),
)
CHANNEL_OPTIONS: tuple[ChannelOption, ...] = (TELEGRAM, SLACK, DISCORD, WHATSAPP)
TERMINAL = "terminal"


def option(name: str) -> ChannelOption | None:
    return next((o for o in CHANNEL_OPTIONS if o.name == name), None)


def configured_values(option: ChannelOption, settings: Settings) -> dict[str, str]:
    """The option's credentials already in the settings (environment or .env)."""
    from pydantic import SecretStr

    values: dict[str, str] = {}
    for field in option.fields:
        value = getattr(settings, field.setting)
        if isinstance(value, SecretStr) and value.get_secret_value():
            values[field.env_key] = value.get_secret_value()
    return values
