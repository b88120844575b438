"""The security tests share the e2e fixtures: a real Docker daemon, the agent image, bubblewrap."""

from __future__ import annotations

from tests.e2e.conftest import agent_image, bwrap_ready, docker_client

__all__ = ["agent_image", "bwrap_ready", "docker_client"]
