"""1,000 sessions: creation cost, sweep CPU, start-up time, host RSS and idle CPU.

In-process (the real host components on a scratch data dir): each of ``--sessions`` chats gets
its session through ``SessionService.resolve`` (folder, both DBs, projection, central row);
then the host starts (no settled record exists yet: the time until its socket opens, then until
its recovery visits of every session, made after that, are done) and a steady-state sweep is
measured in CPU seconds. Then ``nanoclaw run`` is started as its
own process on the same data dir — a restart, whose recovery pass skips the sessions recorded
settled — : time until its CLI socket answers, its RSS, and its idle CPU over
``--idle-seconds`` (after 15 s; start-up drains every session's outbox once).
The durable-commit cost is measured in the same data dir.

    .venv/bin/python benchmarks/scale.py [--sessions 1000] [--idle-seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import (  # noqa: E402
    durable_commit_ms,
    pss_mb,
    rss_mb,
    tree_cpu_s,
    write_worker_pid,
)
from nanoclaw.host import build_host  # noqa: E402
from nanoclaw.settings import Settings  # noqa: E402 - needs the path above

RESULTS = REPO / "benchmarks" / "results" / "scale.json"


def settings_for(scratch: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        root=REPO,
        data_dir=scratch / "data",
        groups_dir=scratch / "groups",
        logs_dir=scratch / "logs",
        cli_socket_path=scratch / "cli.sock",
        runtime="process",
        allow_process_runtime=True,
        timezone="UTC",
    )


async def in_process(settings: Settings, sessions: int) -> dict[str, float]:
    host = build_host(settings)
    host.db.migrate()
    agent = host.repo.create_agent_group(name="Andy", folder="andy")
    chats = []
    for n in range(sessions):
        mg = host.repo.ensure_messaging_group(channel_type="cli", platform_id=f"c{n}", name=f"c{n}")
        host.repo.create_wiring(
            messaging_group_id=mg.id,
            agent_group_id=agent.id,
            engage_mode="pattern",
            engage_pattern=".",
        )
        chats.append(mg.id)
    create_ms, create_cpu_ms = [], []
    for mg_id in chats:
        start, cpu = time.perf_counter(), time.process_time()
        host.sessions.resolve(
            agent_group_id=agent.id, messaging_group_id=mg_id, thread_id=None, mode="shared"
        )
        create_ms.append((time.perf_counter() - start) * 1000)
        create_cpu_ms.append((time.process_time() - cpu) * 1000)
    start = time.perf_counter()
    cpu_start = time.process_time()
    socket_open = asyncio.create_task(asyncio.to_thread(_socket_opened, settings.cli_socket, start))
    await host.start()
    startup_in_process_s = await socket_open
    try:
        # The recovery visits run after the socket opens, in the sweep's task.
        await host.sweep.recovered.wait()
        recovery_s = time.perf_counter() - start
        recovery_cpu_s = time.process_time() - cpu_start
        first = host.sweep.last_report
        cpu0 = time.process_time()
        report = await host.sweep.sweep_once()
        sweep_cpu_s = time.process_time() - cpu0
    finally:
        await host.stop()
    return {
        "create_p50_ms": round(statistics.median(create_ms), 2),
        "create_p95_ms": round(sorted(create_ms)[int(len(create_ms) * 0.95)], 2),
        "create_cpu_p50_ms": round(statistics.median(create_cpu_ms), 2),
        # The first start after creating them (no settled record yet): until its socket opens.
        "startup_in_process_s": round(startup_in_process_s, 2),
        # ... and until its recovery visits (after the socket opened) were all made.
        "first_recovery_done_s": round(recovery_s, 2),
        "first_recovery_cpu_s": round(recovery_cpu_s, 2),
        "startup_in_process_visited": first.swept if first else -1,
        "steady_sweep_cpu_s": round(sweep_cpu_s, 3),
        "steady_sweep_visited": report.swept,
        "steady_sweep_skipped_unchanged": report.unchanged,
    }


def _socket_opened(path: Path, since: float) -> float:
    """Seconds from ``since`` until the host's CLI socket exists (polled every 10 ms)."""
    while not path.exists():
        time.sleep(0.01)
    return time.perf_counter() - since


def as_process(scratch: Path, idle_s: float) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NANOCLAW_", "ANTHROPIC_"))}
    env.update(
        NANOCLAW_ENV_FILE="",
        NANOCLAW_DATA_DIR=str(scratch / "data"),
        NANOCLAW_GROUPS_DIR=str(scratch / "groups"),
        NANOCLAW_CLI_SOCKET_PATH=str(scratch / "cli.sock"),
        NANOCLAW_RUNTIME="process",
        NANOCLAW_ALLOW_PROCESS_RUNTIME="1",
    )
    sock = scratch / "cli.sock"
    sock.unlink(missing_ok=True)
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nanoclaw.cli", "run", "--log-level", "WARNING"], env=env
    )
    try:
        while not sock.exists():
            if proc.poll() is not None:
                raise SystemExit("host did not start")
            time.sleep(0.01)
        startup_s = time.perf_counter() - start
        time.sleep(15)  # let the start-up drains of every session settle
        cpu0 = tree_cpu_s(proc.pid)
        time.sleep(idle_s)
        idle_pct = (tree_cpu_s(proc.pid) - cpu0) / idle_s * 100
        rss = rss_mb(proc.pid)
        worker = write_worker_pid(proc.pid)
        memory = {
            "rss_mb": rss,
            # The write worker is part of the host: RSS of each, and PSS of both (shared
            # pages counted once) as their memory together.
            "write_worker_rss_mb": rss_mb(worker) if worker is not None else 0.0,
            "host_and_worker_pss_mb": round(
                pss_mb(proc.pid) + (pss_mb(worker) if worker is not None else 0.0), 1
            ),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return {"startup_s": round(startup_s, 2), **memory, "idle_cpu_pct": round(idle_pct, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="nc-scale-"))
    try:
        settings = settings_for(scratch)
        settings.data_path.mkdir(parents=True, exist_ok=True)
        commit_ms = durable_commit_ms(settings.data_path / "bench")
        measured = asyncio.run(in_process(settings, args.sessions))
        measured.update(as_process(scratch, args.idle_seconds))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    measured["create_p50_in_commit_costs"] = round(measured["create_p50_ms"] / commit_ms, 1)
    report = {
        "benchmark": "scale",
        "sessions": args.sessions,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "durable_commit_ms": commit_ms,
        "goal": {
            "create_ms_at_most": f"3 commit costs + 5 ms = {round(3 * commit_ms + 5, 1)}",
            "sweep_cpu_s_below": 1.0,
            "startup_s_below": 3.0,
            "rss_mb_below": 100,
        },
        **measured,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
