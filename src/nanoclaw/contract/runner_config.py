"""``config/runner.json``: what the host tells a runner about its session (no secret ever goes here)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Where things appear inside a sandbox. The process runtime uses host paths instead.
CONTAINER_SESSION_DIR = "/session"
CONTAINER_GROUP_DIR = "/workspace/agent"
CONTAINER_GLOBAL_DIR = "/workspace/global"
CONTAINER_EXTRA_DIR = "/workspace/extra"

ENV_SESSION_DIR = "NANOCLAW_SESSION_DIR"
ENV_GROUP_DIR = "NANOCLAW_GROUP_DIR"
ENV_GLOBAL_DIR = "NANOCLAW_GLOBAL_DIR"


@dataclass(frozen=True)
class RunnerConfig:
    session_id: str
    agent_group_id: str
    assistant_name: str
    provider: str  # "mock" | "anthropic"
    model: str
    timezone: str
    max_messages_per_prompt: int
    inbound_schema: int  # expected schema version (user_version) of inbound.db
    outbound_schema: int  # expected schema version (user_version) of outbound.db
    watch_interval_s: float = 0.01
    full_poll_interval_s: float = 1.0
    model_base_url: str | None = None  # the credential proxy's endpoint as the runner sees it
    # A Unix socket (as the runner sees it) carrying the HTTP to ``model_base_url``; None = TCP.
    model_socket: str | None = None
    # A per-runner token for the credential proxy (never the real key; dies with the runner).
    model_token: str | None = None
    web_tools: bool = False
    # Model limits (per agent group from container_configs; the defaults suit a Sonnet-class model)
    max_output_tokens: int = 8192
    context_limit_tokens: int = 150_000  # compact the transcript before the prompt grows past this
    max_tool_iterations: int = 40  # tool steps per turn before the model must answer
    tool_timeout_s: float = 300.0  # bash and other sandbox tools
    api_max_retries: int = 2  # SDK retries on 408/409/429/5xx and connection errors
    # The agent group's MCP servers (``nanoclaw.contract.mcp``: no secret in any env).
    mcp_servers: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)

    def write(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))
        tmp.replace(path)

    @classmethod
    def read(cls, path: Path) -> RunnerConfig:
        data = json.loads(path.read_text())
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)
