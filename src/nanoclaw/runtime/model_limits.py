"""The model limits of an agent group (``container_configs``) carried into its ``RunnerConfig``."""

from __future__ import annotations

import dataclasses

from nanoclaw.contract.runner_config import RunnerConfig
from nanoclaw.db.models import ContainerConfig


def with_model_limits(config: RunnerConfig, cfg: ContainerConfig) -> RunnerConfig:
    """Override the runner's defaults with what the group configures (None = keep default)."""
    changes: dict[str, int] = {}
    if cfg.max_output_tokens:
        changes["max_output_tokens"] = cfg.max_output_tokens
    if cfg.context_limit_tokens:
        changes["context_limit_tokens"] = cfg.context_limit_tokens
    if cfg.max_tool_iterations:
        changes["max_tool_iterations"] = cfg.max_tool_iterations
    return dataclasses.replace(config, **changes) if changes else config
