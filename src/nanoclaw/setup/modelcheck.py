"""One real model request through the running host's credential proxy, with the failure named.

This is the path every agent uses: the proxy swaps the host's check token for the configured
credential and forwards to the configured endpoint. The answer is classified so the user learns
*why* it failed: the credential was rejected (401/403), the endpoint could not be reached
(the proxy says so with its own marker header), or the endpoint failed (5xx).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import httpx

from nanoclaw.runtime.proxy import PROXY_ORIGIN_HEADER
from nanoclaw.service.hoststate import HostState

CHECK_TIMEOUT_S = 60.0
ANTHROPIC_VERSION = "2023-06-01"
PROXY_BASE_URL = "http://nanoclaw-proxy"


class Outcome(StrEnum):
    OK = "ok"
    REJECTED = "rejected"  # 401/403: wrong or revoked credential
    UNREACHABLE = "unreachable"  # DNS, refused, TLS, timeout
    SERVER_ERROR = "server_error"  # 5xx from the endpoint
    BAD_REQUEST = "bad_request"  # 400/404: wrong base URL path or model name
    NO_PROXY = "no_proxy"  # the host is down or runs without a credential


@dataclass(frozen=True)
class CheckResult:
    outcome: Outcome
    status: int | None
    detail: str
    hint: str

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
    except ValueError:
        pass
    return response.text[:300] or response.reason_phrase


def classify(response: httpx.Response, *, endpoint: str) -> CheckResult:
    status = response.status_code
    from_proxy = response.headers.get(PROXY_ORIGIN_HEADER) == "1"
    message = _message(response)
    if 200 <= status < 300:
        return CheckResult(Outcome.OK, status, f"{endpoint} answered", "")
    if status == 429 and not from_proxy:
        return CheckResult(
            Outcome.OK, status, f"{endpoint} accepted the credential (rate-limited now)", ""
        )
    if from_proxy:
        if status == 502:
            return CheckResult(
                Outcome.UNREACHABLE,
                None,
                f"{endpoint} could not be reached (network)",
                "check the base URL, DNS and that the endpoint is up",
            )
        return CheckResult(
            Outcome.NO_PROXY,
            status,
            f"the host's credential proxy refused the check: {message}",
            "restart the host (`nanoclaw restart`) and try again",
        )
    if status in (401, 403):
        return CheckResult(
            Outcome.REJECTED,
            status,
            f"{endpoint} rejected the credential (HTTP {status}: {message})",
            "enter the key or token again; check it has not been revoked",
        )
    if status >= 500:
        return CheckResult(
            Outcome.SERVER_ERROR,
            status,
            f"{endpoint} failed (HTTP {status}: {message})",
            "the endpoint is failing; try again later or check the gateway",
        )
    return CheckResult(
        Outcome.BAD_REQUEST,
        status,
        f"{endpoint} refused the request (HTTP {status}: {message})",
        "check the base URL (it should not end in /v1) and the model name (NANOCLAW_DEFAULT_MODEL)",
    )


def check_model(
    state: HostState | None,
    *,
    timeout_s: float = CHECK_TIMEOUT_S,
    transport: httpx.BaseTransport | None = None,
) -> CheckResult:
    """One ``POST /v1/messages`` (``max_tokens`` 1) through the running host's proxy."""
    if state is None or not state.check_token or not (state.proxy_socket or state.proxy_tcp):
        return CheckResult(
            Outcome.NO_PROXY,
            None,
            "no running host with a model credential (its credential proxy is down)",
            "start the host with `nanoclaw start`; configure a credential with `bash nanoclaw.sh`",
        )
    endpoint = state.base_url or "api.anthropic.com"
    if transport is None:
        transport = (
            httpx.HTTPTransport(uds=state.proxy_socket)
            if state.proxy_socket
            else httpx.HTTPTransport()
        )
    base_url = PROXY_BASE_URL if state.proxy_socket else f"http://{state.proxy_tcp}"
    body = {
        "model": state.model,
        "max_tokens": 1,
        "messages": [{"role": "user", "content": "Reply with OK."}],
    }
    headers = {"x-api-key": state.check_token, "anthropic-version": ANTHROPIC_VERSION}
    try:
        with httpx.Client(transport=transport, base_url=base_url, timeout=timeout_s) as client:
            response = client.post("/v1/messages", json=body, headers=headers)
    except httpx.TimeoutException:
        return CheckResult(
            Outcome.UNREACHABLE,
            None,
            f"{endpoint} did not answer within {timeout_s:g} s (network)",
            "check the base URL and that the endpoint is up",
        )
    except httpx.TransportError as exc:
        return CheckResult(
            Outcome.NO_PROXY,
            None,
            f"the host's credential proxy did not answer ({type(exc).__name__})",
            "restart the host (`nanoclaw restart`) and look at `nanoclaw logs`",
        )
    return classify(response, endpoint=endpoint)
