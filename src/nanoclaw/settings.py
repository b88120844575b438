"""Settings from ``NANOCLAW_*`` environment variables and ``.env``; built once by the CLI and injected."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from functools import cached_property
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

RuntimeName = Literal["auto", "docker", "bwrap", "process"]
ProviderName = Literal["auto", "anthropic", "mock"]


def detect_project_root() -> Path:
    """The checkout this package runs from (editable install), else the current directory."""
    env_root = os.environ.get("NANOCLAW_ROOT")
    if env_root:
        return Path(env_root).expanduser().resolve()
    candidate = Path(__file__).resolve().parents[2]
    if (candidate / "pyproject.toml").is_file() and (candidate / "migrations").is_dir():
        return candidate
    return Path.cwd().resolve()


def detect_host_timezone() -> str:
    """``TZ`` → ``/etc/timezone`` → the ``/etc/localtime`` link → UTC; always a valid IANA name."""
    candidates: list[str] = []
    if os.environ.get("TZ"):
        candidates.append(os.environ["TZ"].lstrip(":"))
    try:
        candidates.append(Path("/etc/timezone").read_text().strip())
    except OSError:
        pass
    try:
        target = str(Path("/etc/localtime").readlink())
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    except OSError:
        pass
    for name in candidates:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
        return name
    return "UTC"


class Settings(BaseSettings):
    """Every knob of the host. Paths default to folders under ``root``."""

    model_config = SettingsConfigDict(
        env_prefix="NANOCLAW_",
        env_file=".env",
        env_nested_delimiter="__",
        extra="ignore",
        populate_by_name=True,
    )

    root: Path = Field(default_factory=detect_project_root)
    data_dir: Path | None = None
    groups_dir: Path | None = None
    logs_dir: Path | None = None
    timezone: str = Field(default_factory=detect_host_timezone)

    # Sandboxes
    runtime: RuntimeName = "auto"
    allow_process_runtime: bool = False
    max_concurrent_runners: int = Field(default=5, ge=1)
    idle_timeout_s: float = Field(default=1800.0, gt=0)
    runner_stop_grace_s: float = Field(default=2.0, ge=0)
    # Overrides the install id derived from ``root`` (tests; several installs in one checkout).
    install_name: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")
    # The agent image: None = the content-tagged image of this checkout (``nanoclaw image build``).
    agent_image: str | None = None
    base_image: str = "python:3.11-slim-bookworm"
    debian_mirror: str = "http://deb.debian.org/debian"
    runner_memory: str = "1g"
    runner_cpus: float = Field(default=1.0, gt=0)
    runner_pids_limit: int = Field(default=256, ge=16)
    # The uid:gid runners use when the host itself runs as root (never root inside a sandbox).
    runner_uid: int = Field(default=1000, ge=1)
    runner_gid: int = Field(default=1000, ge=1)
    # Credential proxy: "unix" (socket mounted into the sandbox) or "tcp" (host gateway; e.g. macOS).
    model_proxy: Literal["unix", "tcp"] = "unix"
    model_proxy_host: str = "127.0.0.1"
    model_proxy_port: int = Field(default=0, ge=0, le=65535)
    # Model requests per agent group per minute through the credential proxy (0 = no limit).
    model_requests_per_minute: int = Field(default=300, ge=0)
    # Extra mounts allowlist: outside the project and never mounted into a sandbox.
    mount_allowlist_path: Path = Field(
        default_factory=lambda: Path("~/.config/nanoclaw/mount-allowlist.json").expanduser()
    )

    # Wake on change: how often the change counter of a session DB is read, and the safety-net poll.
    watch_interval_s: float = Field(default=0.01, gt=0)
    full_poll_interval_s: float = Field(default=1.0, gt=0)

    # Sweep, stuck detection, retries and scheduled tasks (docs/reliability.md)
    sweep_interval_s: float = Field(default=60.0, gt=0)
    stuck_claim_tolerance_s: float = Field(default=60.0, gt=0)
    stuck_heartbeat_ceiling_s: float = Field(default=1800.0, gt=0)
    retry_backoff_base_s: float = Field(default=5.0, ge=0)
    max_tries: int = Field(default=5, ge=1)
    task_catch_up_grace_s: float = Field(default=120.0, ge=0)

    # Delivery and batching
    delivery_max_attempts: int = Field(default=3, ge=1)
    # Every platform send gives up (and is retried) after this long.
    delivery_send_timeout_s: float = Field(default=60.0, gt=0)
    # One session's sends (flood limit). Far above what a conversation needs, and above the
    # benchmarks' rates: one chat's closed loop reaches 100 msg/s on a 2-core machine.
    delivery_rate_per_session_per_s: float = Field(default=250.0, ge=0)
    delivery_burst_per_session: int = Field(default=200, ge=1)
    # Agent-to-agent limits (docs/agent.md): messages per originating chat message, and per
    # pair of agents within a sliding window.
    a2a_max_hops: int = Field(default=10, ge=1)
    a2a_pair_max_messages: int = Field(default=60, ge=1)
    a2a_pair_window_s: float = Field(default=600.0, gt=0)
    max_messages_per_prompt: int = Field(default=10, ge=1)

    # Model
    provider: ProviderName = "auto"
    anthropic_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("NANOCLAW_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY"),
    )
    # A gateway or Anthropic-compatible server: its URL and a bearer token (instead of an API key).
    anthropic_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("NANOCLAW_ANTHROPIC_BASE_URL", "ANTHROPIC_BASE_URL"),
    )
    anthropic_auth_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("NANOCLAW_ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN"),
    )
    default_model: str = "claude-sonnet-4-5"

    # First agent
    assistant_name: str = "Andy"

    # Channels (each is switched on by its credentials alone; base URLs let tests use fakes)
    slack_bot_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("NANOCLAW_SLACK_BOT_TOKEN", "SLACK_BOT_TOKEN")
    )
    slack_app_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("NANOCLAW_SLACK_APP_TOKEN", "SLACK_APP_TOKEN")
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("NANOCLAW_SLACK_SIGNING_SECRET", "SLACK_SIGNING_SECRET"),
    )
    slack_mode: Literal["socket", "http"] = "socket"
    slack_http_host: str = "127.0.0.1"
    slack_http_port: int = Field(default=3000, ge=0, le=65535)
    slack_http_path: str = "/slack/events"
    slack_api_base_url: str = "https://slack.com/api/"
    telegram_bot_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("NANOCLAW_TELEGRAM_BOT_TOKEN", "TELEGRAM_BOT_TOKEN"),
    )
    telegram_api_base_url: str = "https://api.telegram.org"
    telegram_poll_timeout_s: int = Field(default=30, ge=0, le=60)
    # WhatsApp (neonize): on once `nanoclaw channels add whatsapp` has linked a session. With
    # own_number false the assistant shares the owner's number (v1's ASSISTANT_HAS_OWN_NUMBER).
    whatsapp_enabled: bool = False
    whatsapp_own_number: bool = Field(
        default=True,
        validation_alias=AliasChoices("NANOCLAW_WHATSAPP_OWN_NUMBER", "ASSISTANT_HAS_OWN_NUMBER"),
    )
    discord_bot_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("NANOCLAW_DISCORD_BOT_TOKEN", "DISCORD_BOT_TOKEN"),
    )
    # REST base; the gateway URL is what GET /gateway/bot there answers (the seam for fakes).
    discord_api_base_url: str = "https://discord.com/api/v10"
    discord_guild_ready_timeout_s: float = Field(default=2.0, gt=0)  # discord.py's wait for guilds
    channel_retry_delays_s: tuple[float, ...] = (2.0, 5.0, 10.0)

    cli_socket_path: Path | None = None
    # Replies kept per terminal chat until a client acknowledges them; beyond it the oldest go
    # (counted, and the count is shown to the next client of that chat).
    cli_backlog_per_chat: int = Field(default=10_000, ge=1)
    # Bytes a terminal client may leave unread before it is disconnected (its replies are kept).
    cli_client_buffer_bytes: int = Field(default=1024 * 1024, ge=64 * 1024)
    # The service manager `nanoclaw service install` uses: auto, systemd, launchd or fallback.
    service_manager: Literal["auto", "systemd", "launchd", "fallback"] = "auto"
    python_executable: str = Field(default_factory=lambda: sys.executable)
    # `nanoclaw run` pins its own Python threads to one CPU (runners keep every CPU): see
    # nanoclaw.cpu_affinity. Off: the host's threads may run on any CPU.
    host_cpu_pin: bool = True
    # With more than one CPU, `nanoclaw run` commits each message's inbound row and delivery
    # record in a child process on another CPU (nanoclaw.sessions.write_worker). Off: in the
    # host's own threads.
    session_write_worker: bool = True

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @cached_property
    def data_path(self) -> Path:
        return (self.data_dir or self.root / "data").resolve()

    @cached_property
    def groups_path(self) -> Path:
        return (self.groups_dir or self.root / "groups").resolve()

    @cached_property
    def logs_path(self) -> Path:
        return (self.logs_dir or self.root / "logs").resolve()

    @cached_property
    def central_db_path(self) -> Path:
        return self.data_path / "nanoclaw.db"

    @cached_property
    def sessions_path(self) -> Path:
        return self.data_path / "sessions"

    @cached_property
    def cli_socket(self) -> Path:
        return self.cli_socket_path or self.data_path / "cli.sock"

    @cached_property
    def migrations_path(self) -> Path:
        local = self.root / "migrations"
        if local.is_dir():
            return local
        return Path(__file__).resolve().parent / "_migrations"

    @cached_property
    def install_id(self) -> str:
        """Eight hex digits naming this install; containers carry it so installs never reap each other."""
        if self.install_name:
            return self.install_name
        # Two hosts sharing a checkout but not a data dir (every test) are different installs.
        return hashlib.sha1(f"{self.root}\0{self.data_path}".encode()).hexdigest()[:8]

    @property
    def has_model_credential(self) -> bool:
        return any(
            secret is not None and bool(secret.get_secret_value())
            for secret in (self.anthropic_api_key, self.anthropic_auth_token)
        )

    @property
    def effective_provider(self) -> Literal["anthropic", "mock"]:
        """``auto`` uses the Anthropic API when a credential is configured, else the mock."""
        if self.provider == "auto":
            return "anthropic" if self.has_model_credential else "mock"
        return self.provider


def effective_settings_hash(settings: Settings) -> str:
    """A digest of every value the host reads at start; secrets enter only as their SHA-256.

    The running host records it; a CLI that computes a different one knows the host must restart
    to see the current settings.
    """
    values: dict[str, object] = {}
    for name in sorted(type(settings).model_fields):
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = hashlib.sha256(value.get_secret_value().encode()).hexdigest()
        values[name] = value
    blob = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_settings(**overrides: object) -> Settings:
    """Build settings with ``root/.env`` as the dotenv file (the CLI's single construction point).

    ``NANOCLAW_ENV_FILE`` names another dotenv file; set it empty to read none.
    """
    root = Path(str(overrides["root"])) if "root" in overrides else detect_project_root()
    env_file: Path | None = root / ".env"
    if "NANOCLAW_ENV_FILE" in os.environ:
        named = os.environ["NANOCLAW_ENV_FILE"]
        env_file = Path(named) if named else None
    return Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg, arg-type]
