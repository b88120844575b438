"""Sandbox services of the host: the credential proxy, per-runner tokens and extra mounts.

``spec_hook`` amends each runner's ``RunSpec``/``RunnerConfig`` just before it starts: the agent
group's runtime override and validated extra mounts, and for the ``anthropic`` provider a fresh
proxy token, the proxy's socket folder and the endpoint as the runner sees it. When the provider
needs the model API and the proxy is not running or has no key, it raises, so no runner starts
and the session's messages stay pending (invariants 4 and 5). The mock provider needs neither.
"""

from __future__ import annotations

import dataclasses
import logging

from nanoclaw.contract.runner_config import RunnerConfig
from nanoclaw.db.repository import Repository
from nanoclaw.errors import ConfigError, RuntimeUnavailableError, ValidationError
from nanoclaw.executors import Executors
from nanoclaw.runtime.base import Mount, RunnerExit, RunSpec
from nanoclaw.runtime.mounts import load_allowlist, parse_requests, resolve_extra_mounts
from nanoclaw.runtime.plan import CONTAINER_PROXY_DIR, PROXY_SOCKET_NAME
from nanoclaw.runtime.proxy import CredentialProxy, RequestRateLimit
from nanoclaw.settings import Settings

log = logging.getLogger("nanoclaw.runtime.sandbox")

# What the runner's HTTP client puts in the Host header when it talks over the socket.
PROXY_SOCKET_BASE_URL = "http://nanoclaw-proxy"


def build_proxy(settings: Settings) -> CredentialProxy:
    if settings.model_proxy == "tcp":
        return CredentialProxy(
            api_key=settings.anthropic_api_key,
            upstream_url=settings.anthropic_base_url,
            auth_token=settings.anthropic_auth_token,
            tcp_host=settings.model_proxy_host,
            tcp_port=settings.model_proxy_port,
            rate_limit=RequestRateLimit(per_minute=settings.model_requests_per_minute),
        )
    return CredentialProxy(
        api_key=settings.anthropic_api_key,
        upstream_url=settings.anthropic_base_url,
        auth_token=settings.anthropic_auth_token,
        socket_dir=settings.data_path / "proxy",
        rate_limit=RequestRateLimit(per_minute=settings.model_requests_per_minute),
    )


class SandboxServices:
    def __init__(
        self,
        *,
        executors: Executors,
        settings: Settings,
        repo: Repository,
        default_runtime: str,
        proxy: CredentialProxy | None,
    ) -> None:
        self.executors = executors
        self.settings = settings
        self.repo = repo
        self.default_runtime = default_runtime
        self.proxy = proxy

    async def start(self) -> None:
        if self.proxy is None:
            return
        if not self.proxy.has_key:
            log.info("no model credential: the credential proxy stays down (mock provider only)")
            return
        try:
            await self.proxy.start()
        except OSError as exc:
            # Runners that need the model cannot start; the host itself keeps running.
            log.error("credential proxy failed to start: %s", exc)

    async def stop(self) -> None:
        if self.proxy is not None:
            await self.proxy.stop()

    async def on_runner_exit(self, session_id: str, result: RunnerExit) -> None:
        if self.proxy is not None:
            self.proxy.revoke_session(session_id)

    async def spec_hook(self, spec: RunSpec, config: RunnerConfig) -> tuple[RunSpec, RunnerConfig]:
        cfg = await self.executors.central.run(self.repo.container_config, spec.agent_group_id)
        runtime = cfg.runtime or spec.runtime or self.default_runtime
        mounts = await self.executors.blocking.run(self._extra_mounts, cfg.additional_mounts)
        spec = dataclasses.replace(
            spec, runtime=runtime, extra_mounts=(*spec.extra_mounts, *mounts)
        )
        if config.provider != "anthropic":
            return spec, config
        return self._grant_model_access(spec, config, runtime)

    def _extra_mounts(self, raw: str | None) -> list[Mount]:
        try:
            requests = parse_requests(raw)
        except ValidationError as exc:
            log.warning("extra mounts ignored: %s", exc)
            return []
        if not requests:
            return []
        try:
            allowlist = load_allowlist(
                self.settings.mount_allowlist_path, project_root=self.settings.root
            )
        except ConfigError as exc:
            log.warning("extra mounts refused: %s", exc)
            return []
        protected = [self.settings.root, self.settings.data_path, self.settings.groups_path]
        accepted, _ = resolve_extra_mounts(requests, allowlist, protected=protected)
        return list(accepted)

    def _grant_model_access(
        self, spec: RunSpec, config: RunnerConfig, runtime: str
    ) -> tuple[RunSpec, RunnerConfig]:
        proxy = self.proxy
        if proxy is None or not proxy.has_key:
            raise RuntimeUnavailableError(
                "no model credential configured (set ANTHROPIC_API_KEY in .env) and the "
                "agent group uses the anthropic provider; its messages stay pending",
                runtime=runtime,
            )
        if not proxy.available:
            raise RuntimeUnavailableError(
                "the credential proxy is not running; no runner that needs the model starts",
                runtime=runtime,
            )
        token = proxy.issue(agent_group_id=spec.agent_group_id, session_id=spec.session_id)
        if proxy.socket_path is not None:
            if runtime == "process":
                socket = str(proxy.socket_path)
            else:
                socket = f"{CONTAINER_PROXY_DIR}/{PROXY_SOCKET_NAME}"
                spec = dataclasses.replace(spec, proxy_dir=proxy.socket_dir)
            config = dataclasses.replace(
                config, model_base_url=PROXY_SOCKET_BASE_URL, model_socket=socket, model_token=token
            )
            return spec, config
        # TCP: reachable from a container only through the host gateway (network opt-in).
        if runtime == "bwrap" or (runtime == "docker" and spec.network != "open"):
            proxy.revoke_session(spec.session_id)
            raise RuntimeUnavailableError(
                "the TCP credential proxy needs the agent group's network to be open "
                "(or NANOCLAW_MODEL_PROXY=unix)",
                runtime=runtime,
            )
        host = "host.docker.internal" if runtime == "docker" else proxy.tcp_host
        config = dataclasses.replace(
            config,
            model_base_url=f"http://{host}:{proxy.tcp_port}",
            model_socket=None,
            model_token=token,
        )
        return spec, config
