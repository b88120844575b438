"""The credential check: one real request through the real credential proxy, failures named."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from pydantic import SecretStr

from nanoclaw.runtime.proxy import CredentialProxy
from nanoclaw.service.hoststate import HostState
from nanoclaw.setup.modelcheck import Outcome, check_model
from tests.fakes.anthropic_server import FakeAnthropic, error


def state_for(proxy: CredentialProxy, base_url: str) -> HostState:
    return HostState(
        pid=1,
        started_at="now",
        version="t",
        settings_hash="h",
        provider="anthropic",
        model="claude-test",
        base_url=base_url,
        credential="api key",
        runtime="process",
        timezone="UTC",
        proxy_socket=str(proxy.socket_path),
        check_token=proxy.issue_check_token(),
    )


async def check(
    short_dir: Path, upstream: str, *, api_key: str | None = None, token: str | None = None
) -> tuple[Outcome, str]:
    proxy = CredentialProxy(
        api_key=SecretStr(api_key) if api_key else None,
        auth_token=SecretStr(token) if token else None,
        upstream_url=upstream,
        socket_dir=short_dir / "proxy",
    )
    await proxy.start()
    try:
        result = await asyncio.to_thread(check_model, state_for(proxy, upstream), timeout_s=20)
    finally:
        await proxy.stop()
    return result.outcome, result.detail


async def test_a_good_key_passes_and_a_gateway_token_is_sent_as_bearer(
    fake_api: FakeAnthropic, short_dir: Path
) -> None:
    fake_api.accept_tokens = {"sk-good", "gw-token"}
    assert (await check(short_dir, fake_api.base_url, api_key="sk-good"))[0] is Outcome.OK
    assert fake_api.requests[-1].body["max_tokens"] == 1
    assert (await check(short_dir, fake_api.base_url, token="gw-token"))[0] is Outcome.OK
    assert fake_api.requests[-1].headers["Authorization"] == "Bearer gw-token"


async def test_a_rejected_key_is_named_401(fake_api: FakeAnthropic, short_dir: Path) -> None:
    fake_api.accept_tokens = {"sk-good"}
    outcome, detail = await check(short_dir, fake_api.base_url, api_key="sk-wrong")
    assert outcome is Outcome.REJECTED and "HTTP 401" in detail and "sk-wrong" not in detail


async def test_a_failing_endpoint_is_named_5xx(fake_api: FakeAnthropic, short_dir: Path) -> None:
    fake_api.push(error(500, "boom", retry=False))
    outcome, detail = await check(short_dir, fake_api.base_url, api_key="sk-any")
    assert outcome is Outcome.SERVER_ERROR and "HTTP 500" in detail


async def test_an_unreachable_endpoint_is_named_network(short_dir: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome, detail = await check(short_dir, f"http://127.0.0.1:{port}", api_key="sk-any")
    assert outcome is Outcome.UNREACHABLE and "network" in detail


def test_no_running_host_is_said_plainly() -> None:
    result = check_model(None)
    assert result.outcome is Outcome.NO_PROXY and "nanoclaw start" in result.hint
