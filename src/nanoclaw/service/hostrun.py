"""``nanoclaw run``: the start-up breaker, the pid file and the host-state record around one Host.

The order is what makes restarts honest: the breaker decides (and logs) any wait first; the
state file, written once the host is up, carries the hash of the settings this process read,
so ``status`` and setup can tell when the host must restart to see newer ones. A clean stop
(SIGTERM, SIGINT) resets the breaker and removes the pid and state files.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

from nanoclaw import __version__
from nanoclaw.contract.timeutil import now_iso
from nanoclaw.cpu_affinity import pin_host_threads, usable_cpus
from nanoclaw.settings import Settings, effective_settings_hash

from .breaker import StartupBreaker
from .hoststate import HostState, clear_state, write_state
from .pidfile import PidFile

log = logging.getLogger("nanoclaw.service.run")


def credential_kind(settings: Settings) -> str:
    if settings.anthropic_api_key is not None and settings.anthropic_api_key.get_secret_value():
        return "api key"
    if (
        settings.anthropic_auth_token is not None
        and settings.anthropic_auth_token.get_secret_value()
    ):
        return "auth token"
    return "none"


async def run_host(settings: Settings, *, pid_file: Path | None) -> None:
    from nanoclaw.host import build_host

    # First, on the loop thread: every thread the host starts from here inherits the pin.
    pin_host_threads(enabled=settings.host_cpu_pin)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    pids = PidFile(pid_file) if pid_file is not None else None
    if pids is not None:
        pids.write()
    breaker = StartupBreaker(data_path=settings.data_path)
    decision = breaker.on_start()
    try:
        if decision.delay_s > 0:
            try:
                await asyncio.wait_for(stop.wait(), decision.delay_s)
            except TimeoutError:
                pass
            if stop.is_set():
                breaker.on_clean_stop()
                return
        worker = None
        if settings.session_write_worker and usable_cpus() > 1:
            from nanoclaw.sessions.write_client import WriteWorker

            worker = WriteWorker()
        host = build_host(settings, write_worker=worker)
        await host.start()
        try:
            proxy = host.sandbox.proxy
            proxy_up = proxy is not None and proxy.available
            write_state(
                settings.data_path,
                HostState(
                    pid=os.getpid(),
                    started_at=now_iso(),
                    version=__version__,
                    settings_hash=effective_settings_hash(settings),
                    provider=settings.effective_provider,
                    model=settings.default_model,
                    base_url=settings.anthropic_base_url,
                    credential=credential_kind(settings),
                    runtime=host.runtime.name,
                    timezone=settings.timezone,
                    proxy_socket=str(proxy.socket_path)
                    if proxy_up and proxy is not None and proxy.socket_path
                    else None,
                    proxy_tcp=f"{proxy.tcp_host}:{proxy.tcp_port}"
                    if proxy_up and proxy is not None and proxy.socket_path is None
                    else None,
                    check_token=proxy.issue_check_token()
                    if proxy_up and proxy is not None
                    else None,
                ),
            )
            await stop.wait()
        finally:
            await host.stop()
            clear_state(settings.data_path, os.getpid())
        breaker.on_clean_stop()
    finally:
        if pids is not None:
            pids.remove_if_mine()
