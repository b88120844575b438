"""Where each setting's value comes from: a flag, a ``NANOCLAW_*`` variable, a standard one, ``.env``.

Precedence (highest first): a setup flag, ``NANOCLAW_*`` environment variables, the standard
``ANTHROPIC_API_KEY`` / ``ANTHROPIC_BASE_URL`` / ``ANTHROPIC_AUTH_TOKEN`` variables, ``.env``,
the default. ``Settings`` resolves values in that order (its alias choices list the
``NANOCLAW_`` name first; environment beats the dotenv file); this module only names the source,
and never returns a secret.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydantic import AliasChoices

from nanoclaw.settings import Settings

from .envfile import read_env


class Origin(StrEnum):
    FLAG = "flag"
    ENVIRONMENT = "environment"
    ENV_FILE = ".env"
    DEFAULT = "default"


@dataclass(frozen=True)
class Source:
    field: str
    origin: Origin
    name: str | None  # the variable or flag that supplied it
    shown: str  # the value as it may be printed (secrets: set / not set)

    def describe(self) -> str:
        if self.origin is Origin.DEFAULT:
            return f"{self.shown} (default)"
        return f"{self.shown} (from {self.origin.value} {self.name})"


# The values doctor reports, in the order it reports them.
REPORTED_FIELDS = (
    "provider",
    "anthropic_api_key",
    "anthropic_auth_token",
    "anthropic_base_url",
    "default_model",
    "timezone",
    "runtime",
    "service_manager",
    "slack_bot_token",
    "slack_app_token",
    "telegram_bot_token",
    "discord_bot_token",
)


def env_names(field: str) -> tuple[str, ...]:
    """The variable names that set ``field``, highest precedence first."""
    info = Settings.model_fields[field]
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return tuple(str(choice) for choice in alias.choices)
    if isinstance(alias, str):
        return (alias,)
    return (f"NANOCLAW_{field.upper()}",)


def source_of(
    field: str,
    settings: Settings,
    *,
    env_file: Path | None,
    environ: dict[str, str] | None = None,
    flags: dict[str, str] | None = None,
) -> Source:
    environ = dict(os.environ) if environ is None else environ
    shown = _shown(getattr(settings, field))
    if flags and field in flags:
        return Source(field, Origin.FLAG, flags[field], shown)
    upper_env = {k.upper(): k for k in environ}
    for name in env_names(field):
        if name.upper() in upper_env:
            return Source(field, Origin.ENVIRONMENT, name, shown)
    dotenv = {k.upper(): k for k in (read_env(env_file) if env_file else {})}
    for name in env_names(field):
        if name.upper() in dotenv:
            return Source(field, Origin.ENV_FILE, dotenv[name.upper()], shown)
    return Source(field, Origin.DEFAULT, None, shown)


def _shown(value: object) -> str:
    from pydantic import SecretStr

    if isinstance(value, SecretStr):
        return "set" if value.get_secret_value() else "empty"
    if value is None:
        return "not set"
    return str(value)
