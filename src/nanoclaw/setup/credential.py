"""The credential step: an Anthropic API key, a custom endpoint (URL + token), or the mock model.

Answers come, highest first, from flags, ``NANOCLAW_*`` variables, the standard ``ANTHROPIC_*``
variables, then ``.env``; with a terminal the user confirms or replaces them, without one they
are taken as found. The chosen credential is written to ``.env`` (0600), so the service reads
the same; it is only ever shown masked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlparse

from nanoclaw.settings import Settings

from .envfile import read_env, store_env
from .prompts import Prompter
from .sources import source_of

CREDENTIAL_KEYS = (
    "NANOCLAW_ANTHROPIC_API_KEY",
    "NANOCLAW_ANTHROPIC_AUTH_TOKEN",
    "NANOCLAW_ANTHROPIC_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
)


class CredentialKind(StrEnum):
    API_KEY = "api-key"
    ENDPOINT = "endpoint"
    MOCK = "mock"


@dataclass(frozen=True)
class CredentialFlags:
    kind: CredentialKind | None = None
    api_key: str | None = None
    base_url: str | None = None
    auth_token: str | None = None


@dataclass(frozen=True)
class Credential:
    kind: CredentialKind
    api_key: str | None = None
    base_url: str | None = None
    auth_token: str | None = None
    source: str = ""  # where the answer came from, for the summary and setup.log

    def describe(self) -> str:
        if self.kind is CredentialKind.MOCK:
            return "the mock model (no credential; replies say so)"
        if self.kind is CredentialKind.API_KEY:
            where = f" at {self.base_url}" if self.base_url else ""
            return f"Anthropic API key {mask(self.api_key or '')}{where} ({self.source})"
        return (
            f"custom endpoint {self.base_url}, token {mask(self.auth_token or '')} ({self.source})"
        )


def mask(secret: str) -> str:
    """``sk-a…9xQ2``: enough to recognise a credential, never enough to use it."""
    if len(secret) <= 12:
        return "…"
    return f"{secret[:4]}…{secret[-4:]}"


def check_url(value: str) -> str | None:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return "enter a URL starting with https:// (or http:// on this machine)"
    return None


def found(settings: Settings, flags: CredentialFlags, env_file: Path) -> Credential | None:
    """The credential already supplied by flags, the environment or ``.env``, if any.

    With both an API key and a token configured the API key is used (as the proxy does).
    """
    if flags.kind is CredentialKind.MOCK:
        return Credential(CredentialKind.MOCK, source="flag --mock")
    given = {
        field: flag
        for field, flag, value in (
            ("anthropic_api_key", "--api-key", flags.api_key),
            ("anthropic_auth_token", "--auth-token", flags.auth_token),
            ("anthropic_base_url", "--base-url", flags.base_url),
        )
        if value
    }
    api_key = flags.api_key or _secret(settings.anthropic_api_key)
    token = flags.auth_token or _secret(settings.anthropic_auth_token)
    base_url = flags.base_url or settings.anthropic_base_url
    if (
        flags.kind is CredentialKind.ENDPOINT
        or (token and not api_key)
        or (flags.auth_token and not flags.api_key)
    ):
        if not token:
            return None
        kind, field = CredentialKind.ENDPOINT, "anthropic_auth_token"
    elif api_key:
        kind, field = CredentialKind.API_KEY, "anthropic_api_key"
    elif settings.provider == "mock":
        return Credential(CredentialKind.MOCK, source="NANOCLAW_PROVIDER=mock")
    else:
        return None
    src = source_of(field, settings, env_file=env_file, flags=given)
    source = f"from {src.origin.value} {src.name}"
    if kind is CredentialKind.ENDPOINT:
        return Credential(kind, base_url=base_url, auth_token=token, source=source)
    return Credential(kind, api_key=api_key, base_url=base_url, source=source)


def _secret(value: object) -> str | None:
    from pydantic import SecretStr

    if isinstance(value, SecretStr) and value.get_secret_value():
        return value.get_secret_value()
    return None


def ask(prompter: Prompter, *, default_url: str | None = None) -> Credential:
    kind = CredentialKind(
        prompter.choose(
            "How should your assistant reach a model?",
            [
                (CredentialKind.API_KEY.value, "An Anthropic API key (console.anthropic.com)"),
                (
                    CredentialKind.ENDPOINT.value,
                    "A custom endpoint: base URL + token (a gateway, an Anthropic-compatible server)",
                ),
                (
                    CredentialKind.MOCK.value,
                    "Keep the mock model for now (no credential, canned replies)",
                ),
            ],
            default=CredentialKind.API_KEY.value,
        )
    )
    if kind is CredentialKind.MOCK:
        return Credential(kind, source="answered")
    if kind is CredentialKind.API_KEY:
        return Credential(kind, api_key=prompter.secret("Anthropic API key"), source="answered")
    url = prompter.ask("Base URL", default=default_url, check=check_url)
    token = prompter.secret("Token for that endpoint")
    return Credential(kind, base_url=url.rstrip("/"), auth_token=token, source="answered")


def store(env_file: Path, credential: Credential) -> None:
    """Write the credential to ``.env`` (0600), replacing every earlier credential line."""
    values: dict[str, str] = {}
    if credential.kind is CredentialKind.MOCK:
        values["NANOCLAW_PROVIDER"] = "mock"
        store_env(env_file, values)
        return
    if credential.api_key:
        values["NANOCLAW_ANTHROPIC_API_KEY"] = credential.api_key
    if credential.auth_token:
        values["NANOCLAW_ANTHROPIC_AUTH_TOKEN"] = credential.auth_token
    if credential.base_url:
        values["NANOCLAW_ANTHROPIC_BASE_URL"] = credential.base_url
    store_env(env_file, values, remove=(*CREDENTIAL_KEYS, "NANOCLAW_PROVIDER"))


def conflicting_environment(credential: Credential) -> list[str]:
    """Variables in this shell that would override what was just stored (say so, never hide it)."""
    names = [k for k in CREDENTIAL_KEYS if k in os.environ]
    if credential.kind is CredentialKind.MOCK:
        return names
    return [
        k
        for k in names
        if os.environ[k] not in (credential.api_key, credential.auth_token, credential.base_url)
    ]


def env_has_credential(env_file: Path) -> bool:
    return any(k in read_env(env_file) for k in CREDENTIAL_KEYS)
