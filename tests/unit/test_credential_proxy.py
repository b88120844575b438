"""The credential proxy against a fake Messages API on loopback, reached over its Unix socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import aiohttp
import anthropic
import pytest
from pydantic import SecretStr

from nanoclaw.contract.runner_config import RunnerConfig
from nanoclaw.db.repository import Repository
from nanoclaw.errors import RuntimeUnavailableError
from nanoclaw.runtime.base import RunSpec
from nanoclaw.runtime.proxy import CredentialProxy, RequestRateLimit
from nanoclaw.runtime.sandbox import PROXY_SOCKET_BASE_URL, SandboxServices
from nanoclaw.settings import Settings
from tests.fakes.anthropic_server import FakeAnthropic, reply
from tests.helpers import shared_executors

try:
    import httpx2 as http
except ImportError:  # older anthropic SDKs are built on httpx
    import httpx as http  # type: ignore[no-redef]

KEY = "sk-ant-real-key-only-on-the-host"


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeAnthropic]:
    fake = FakeAnthropic()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def proxy(fake_api: FakeAnthropic, short_dir: Path) -> AsyncIterator[CredentialProxy]:
    instance = CredentialProxy(
        api_key=SecretStr(KEY), upstream_url=fake_api.base_url, socket_dir=short_dir / "proxy"
    )
    await instance.start()
    yield instance
    await instance.stop()


def sdk_client(proxy: CredentialProxy, token: str) -> anthropic.AsyncAnthropic:
    """Exactly how the runner builds its client (agent_runner/providers/anthropic.py)."""
    assert proxy.socket_path is not None
    return anthropic.AsyncAnthropic(
        api_key=token,
        base_url=PROXY_SOCKET_BASE_URL,
        http_client=http.AsyncClient(transport=http.AsyncHTTPTransport(uds=str(proxy.socket_path))),
        max_retries=0,
    )


async def raw_post(
    proxy: CredentialProxy, headers: dict[str, str]
) -> tuple[int, dict[str, object]]:
    connector = aiohttp.UnixConnector(path=str(proxy.socket_path))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post(
            "http://proxy/v1/messages",
            json={"model": "m", "max_tokens": 5, "messages": []},
            headers=headers,
        ) as response,
    ):
        return response.status, await response.json()


async def test_a_live_token_is_swapped_for_the_real_key(
    proxy: CredentialProxy, fake_api: FakeAnthropic
) -> None:
    token = proxy.issue(agent_group_id="ag-1", session_id="s-1")
    fake_api.push(reply("hello from the model", input_tokens=12, output_tokens=3))
    client = sdk_client(proxy, token)
    message = await client.messages.create(
        model="claude-test", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    await client.close()
    assert message.content[0].text == "hello from the model"  # type: ignore[union-attr]
    seen = {k.lower(): v for k, v in fake_api.requests[0].headers.items()}
    assert seen["x-api-key"] == KEY
    assert token not in str(seen)
    assert "authorization" not in seen
    assert proxy.usage["ag-1"].requests == 1
    assert (proxy.usage["ag-1"].input_tokens, proxy.usage["ag-1"].output_tokens) == (12, 3)


async def test_streaming_answers_pass_through_and_usage_is_attributed(
    proxy: CredentialProxy, fake_api: FakeAnthropic
) -> None:
    token = proxy.issue(agent_group_id="ag-2", session_id="s-2")
    fake_api.push(reply("streamed words", input_tokens=7, output_tokens=4))
    client = sdk_client(proxy, token)
    async with client.messages.stream(
        model="claude-test", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = "".join([chunk async for chunk in stream.text_stream])
    await client.close()
    assert text == "streamed words"
    assert proxy.usage["ag-2"].output_tokens == 4 and proxy.usage["ag-2"].input_tokens == 7
    assert "ag-1" not in proxy.usage


async def test_unknown_and_revoked_tokens_never_reach_the_model(
    proxy: CredentialProxy, fake_api: FakeAnthropic
) -> None:
    status, body = await raw_post(proxy, {"x-api-key": "ncp-made-up"})
    assert status == 401 and body["error"]["type"] == "authentication_error"  # type: ignore[index]
    status, _ = await raw_post(proxy, {"authorization": f"Bearer {KEY}"})  # even the real key
    assert status == 401
    token = proxy.issue(agent_group_id="ag-1", session_id="s-1")
    status, _ = await raw_post(proxy, {"x-api-key": token})
    assert status == 200
    proxy.revoke_session("s-1")
    status, _ = await raw_post(proxy, {"x-api-key": token})
    assert status == 401
    assert len(fake_api.requests) == 1


async def test_a_new_token_for_a_session_kills_the_old_one(proxy: CredentialProxy) -> None:
    old = proxy.issue(agent_group_id="ag-1", session_id="s-1")
    new = proxy.issue(agent_group_id="ag-1", session_id="s-1")
    assert old != new and proxy.live_tokens() == 1
    assert (await raw_post(proxy, {"x-api-key": old}))[0] == 401


async def test_the_socket_is_reachable_by_the_sandbox_user(proxy: CredentialProxy) -> None:
    assert proxy.socket_path is not None
    assert proxy.socket_path.stat().st_mode & 0o777 == 0o666
    assert [p.name for p in proxy.socket_path.parent.iterdir()] == ["model.sock"]


async def test_an_unreachable_model_api_is_a_502_not_a_hang(short_dir: Path) -> None:
    instance = CredentialProxy(
        api_key=SecretStr(KEY), upstream_url="http://127.0.0.1:9", socket_dir=short_dir / "p"
    )
    await instance.start()
    try:
        token = instance.issue(agent_group_id="ag-1", session_id="s-1")
        status, _ = await raw_post(instance, {"x-api-key": token})
    finally:
        await instance.stop()
    assert status == 502 and instance.usage["ag-1"].errors == 1


# -- the spec hook: who gets a token, and no start without key or proxy -----------------------


class _Cfg:
    runtime = None
    additional_mounts = "[]"


class _Repo:
    def container_config(self, agent_group_id: str) -> _Cfg:
        return _Cfg()


def spec_and_config(tmp_path: Path, provider: str) -> tuple[RunSpec, RunnerConfig]:
    spec = RunSpec(
        session_id="s-1",
        agent_group_id="ag-1",
        agent_folder="andy",
        session_dir=tmp_path,
        group_dir=tmp_path,
        global_dir=tmp_path,
        install_id="i1",
        timezone="UTC",
    )
    config = RunnerConfig(
        session_id="s-1",
        agent_group_id="ag-1",
        assistant_name="Andy",
        provider=provider,
        model="m",
        timezone="UTC",
        max_messages_per_prompt=5,
        inbound_schema=2,
        outbound_schema=2,
    )
    return spec, config


def services(settings: Settings, proxy: CredentialProxy | None, runtime: str) -> SandboxServices:
    return SandboxServices(
        executors=shared_executors(),
        settings=settings,
        repo=cast(Repository, _Repo()),
        default_runtime=runtime,  # type: ignore[arg-type]
        proxy=proxy,
    )


@pytest.mark.parametrize("runtime", ["docker", "bwrap"])
async def test_sandboxed_runners_get_a_token_and_the_socket_folder(
    settings: Settings, proxy: CredentialProxy, tmp_path: Path, runtime: str
) -> None:
    spec, config = await services(settings, proxy, runtime).spec_hook(
        *spec_and_config(tmp_path, "anthropic")
    )
    assert spec.proxy_dir == proxy.socket_dir
    assert config.model_socket == "/run/nanoclaw/model.sock"
    assert config.model_base_url == PROXY_SOCKET_BASE_URL
    assert config.model_token and config.model_token.startswith("ncp-")
    assert KEY not in repr(spec) + repr(config)


async def test_the_process_runtime_uses_the_host_socket_path(
    settings: Settings, proxy: CredentialProxy, tmp_path: Path
) -> None:
    spec, config = await services(settings, proxy, "process").spec_hook(
        *spec_and_config(tmp_path, "anthropic")
    )
    assert config.model_socket == str(proxy.socket_path) and spec.proxy_dir is None


async def test_the_mock_provider_needs_neither_key_nor_proxy(
    settings: Settings, tmp_path: Path
) -> None:
    spec, config = await services(settings, None, "docker").spec_hook(
        *spec_and_config(tmp_path, "mock")
    )
    assert config.model_token is None and spec.proxy_dir is None


async def test_no_key_or_no_proxy_means_no_runner_starts(
    settings: Settings, fake_api: FakeAnthropic, short_dir: Path, tmp_path: Path
) -> None:
    keyless = CredentialProxy(
        api_key=None, upstream_url=fake_api.base_url, socket_dir=short_dir / "k"
    )
    with pytest.raises(RuntimeUnavailableError, match="no model credential"):
        await services(settings, keyless, "docker").spec_hook(
            *spec_and_config(tmp_path, "anthropic")
        )
    stopped = CredentialProxy(
        api_key=SecretStr(KEY), upstream_url=fake_api.base_url, socket_dir=short_dir / "s"
    )  # never started
    with pytest.raises(RuntimeUnavailableError, match="not running"):
        await services(settings, stopped, "docker").spec_hook(
            *spec_and_config(tmp_path, "anthropic")
        )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_an_agent_over_its_request_rate_gets_a_429_the_sdk_understands(
    fake_api: FakeAnthropic, short_dir: Path
) -> None:
    clock = Clock()
    limited = CredentialProxy(
        api_key=SecretStr(KEY),
        upstream_url=fake_api.base_url,
        socket_dir=short_dir / "limited",
        rate_limit=RequestRateLimit(per_minute=2, clock=clock),
    )
    await limited.start()
    try:
        busy = sdk_client(limited, limited.issue(agent_group_id="ag-busy", session_id="s-1"))
        calm = sdk_client(limited, limited.issue(agent_group_id="ag-calm", session_id="s-2"))
        ask: dict[str, Any] = {"model": "m", "max_tokens": 5, "messages": [
            {"role": "user", "content": "hi"}]}  # fmt: skip
        for _ in range(3):
            fake_api.push(reply("ok"))
        await busy.messages.create(**ask)
        clock.now += 30
        await busy.messages.create(**ask)
        with pytest.raises(anthropic.RateLimitError) as refused:
            await busy.messages.create(**ask)
        assert refused.value.response.headers["retry-after"] == "30"  # the first leaves at 60 s
        assert "2 model requests a minute" in str(refused.value)
        await calm.messages.create(**ask)  # another agent group has its own budget
        clock.now += 31
        fake_api.push(reply("ok again"))
        again = await busy.messages.create(**ask)
        assert again.content[0].text == "ok again"  # type: ignore[union-attr]
        assert len(fake_api.requests) == 4  # the refused request never reached the model
    finally:
        await limited.stop()
