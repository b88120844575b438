"""The model limits of an agent group (``container_configs``) carried into its ``RunnerConfig``."""

from __future__ import annotations

import dataclasses

from nanoclaw.contract.runner_config import RunnerConfig
from nanoclaw.db.models import ContainerConfig


def with_model_limits(config: RunnerConfig, cfg: ContainerConfig) -> RunnerConfig:
    """Override the runner's defaults with what the group configures (None = keep default)."""
    return dataclasses.replace(
        config,
        max_output_tokens=cfg.max_output_tokens or config.max_output_tokens,
        context_limit_tokens=cfg.context_limit_tokens or config.context_limit_tokens,
        max_tool_iterations=cfg.max_tool_iterations or config.max_tool_iterations,
    )
