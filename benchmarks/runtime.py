"""Cold and warm message latency per sandbox runtime (docker, bwrap, process), as JSON.

For each runtime, a real host runs in this process on a scratch data directory with the mock
model. *Cold*: the session's runner is stopped, then one message is sent; the time from send
to reply includes starting the sandbox (container create + start, or bwrap + Python start-up).
*Warm*: messages one after another to a live runner. Results go to
``benchmarks/results/runtime.json``.

    .venv/bin/python benchmarks/runtime.py [--cold 20] [--warm 200] [--runtimes docker,bwrap]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import secrets
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import round_trip, summary  # noqa: E402 - needs the path above

sys.path.insert(0, str(REPO / "src"))
RESULTS = REPO / "benchmarks" / "results" / "runtime.json"
REPLY_TIMEOUT_S = 60.0
GOALS = {
    "docker_cold_p50_ms_below": 1500,
    "bwrap_cold_p50_ms_below": 300,
    "warm_p50_within_ms_of_process": 20,
}


def build_image() -> str:
    import docker

    from nanoclaw.runtime.image import ImageBuilder
    from nanoclaw.settings import Settings

    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    builder = ImageBuilder(
        client=docker.from_env(timeout=600),
        wheelhouse=REPO / ".wheelhouse",
        base_image=defaults.base_image,
        debian_mirror=defaults.debian_mirror,
        progress=lambda line: None,
    )
    return builder.build().image


async def measure(runtime: str, cold_n: int, warm_n: int, image: str | None) -> dict[str, Any]:
    from nanoclaw.host import build_host
    from nanoclaw.settings import Settings

    scratch = Path(tempfile.mkdtemp(prefix="nc-rtb-", dir="/tmp"))
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        root=REPO,
        data_dir=scratch / "data",
        groups_dir=scratch / "groups",
        logs_dir=scratch / "logs",
        cli_socket_path=scratch / "cli.sock",
        runtime=runtime,  # type: ignore[arg-type]
        allow_process_runtime=runtime == "process",
        timezone="UTC",
        install_name=f"bench-{secrets.token_hex(3)}",
        agent_image=image,
        mount_allowlist_path=scratch / "no-allowlist.json",
    )
    host = build_host(settings)
    await host.start()
    try:
        agent = host.repo.create_agent_group(name="Andy", folder="andy")
        mg = host.repo.ensure_messaging_group(
            channel_type="cli", platform_id="bench", name="bench", unknown_sender_policy="public"
        )
        host.repo.create_wiring(
            messaging_group_id=mg.id,
            agent_group_id=agent.id,
            engage_mode="pattern",
            engage_pattern=".",
        )
        first = await round_trip(
            settings.cli_socket, "bench", "first message", reply_timeout_s=REPLY_TIMEOUT_S
        )
        session_id = next(iter(host.supervisor.running_sessions()))
        cold: list[float] = []
        for i in range(cold_n):
            await host.supervisor.stop(session_id)
            cold.append(
                await round_trip(
                    settings.cli_socket, "bench", f"cold {i}", reply_timeout_s=REPLY_TIMEOUT_S
                )
            )
        warm = [
            await round_trip(
                settings.cli_socket, "bench", f"warm {i}", reply_timeout_s=REPLY_TIMEOUT_S
            )
            for i in range(warm_n)
        ]
    finally:
        await host.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return {
        "first_message_ms": round(first, 1),
        "cold": summary(cold, digits=1),
        "warm": summary(warm, digits=1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cold", type=int, default=20)
    parser.add_argument("--warm", type=int, default=200)
    parser.add_argument("--runtimes", default="process,bwrap,docker")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for key in [k for k in os.environ if k.startswith(("NANOCLAW_", "ANTHROPIC_"))]:
        del os.environ[key]
    results: dict[str, Any] = {}
    for runtime in args.runtimes.split(","):
        image = build_image() if runtime == "docker" else None
        results[runtime] = asyncio.run(measure(runtime, args.cold, args.warm, image))
        print(runtime, json.dumps(results[runtime]), flush=True)
    if "process" in results:
        base = results["process"]["warm"]["p50_ms"]
        for data in results.values():
            data["warm_p50_minus_process_ms"] = round(data["warm"]["p50_ms"] - base, 1)
    report = {
        "benchmark": "runtime",
        "what": "send → reply through the CLI socket with the mock model; cold = runner stopped "
        "before the message (sandbox start included); warm = live runner",
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "goals": GOALS,
        "runtimes": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
