"""``nanoclaw status``: agent groups, wirings, sessions and runners, as tables or JSON."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from rich.console import Console
from rich.table import Table

from nanoclaw.db.central import CentralDB
from nanoclaw.db.repository import Repository
from nanoclaw.service.probe import host_running
from nanoclaw.sessions.quarantine import list_quarantined
from nanoclaw.settings import Settings


def channel_states(settings: Settings) -> list[dict[str, Any]]:
    """Each channel: its live state from the running host, else whether its credentials are set."""
    from nanoclaw.channels.registry import STATE_FILE, builtin_specs, read_states

    running = host_running(settings)
    live = (
        (read_states(settings.data_path / STATE_FILE) or {}).get("channels", {}) if running else {}
    )
    rows: list[dict[str, Any]] = [
        {
            "channel": "cli",
            "state": "connected" if running else "stopped",
            "detail": str(settings.cli_socket),
            "since": None,
        }
    ]
    for spec in builtin_specs():
        missing = spec.enabled_by(settings)
        state = live.get(spec.name)
        if state is not None:
            detail = state.get("detail") or ""
            if state.get("state") == "retrying":
                detail = f"attempt {state.get('attempts')}: {detail}"
            rows.append(
                {
                    "channel": spec.name,
                    "state": state.get("state"),
                    "detail": detail,
                    "since": state.get("since"),
                }
            )
        elif missing:
            rows.append(
                {
                    "channel": spec.name,
                    "state": "not configured",
                    "detail": "set " + ", ".join(missing),
                    "since": None,
                }
            )
        else:
            rows.append(
                {
                    "channel": spec.name,
                    "state": "configured" if not running else "unknown",
                    "detail": "starts with the host",
                    "since": None,
                }
            )
    return rows


def running_host(settings: Settings) -> dict[str, Any] | None:
    """What the running host uses (from its state file), and whether the settings changed since."""
    from nanoclaw.service.breaker import StartupBreaker
    from nanoclaw.service.current import running_state
    from nanoclaw.settings import effective_settings_hash

    breaker = StartupBreaker(data_path=settings.data_path).status()
    state = running_state(settings)
    if state is None:
        return {"breaker": breaker} if breaker["crashes_last_hour"] else None
    info = state.model_dump(exclude={"check_token", "proxy_socket", "proxy_tcp"})
    info["settings_current"] = state.settings_hash == effective_settings_hash(settings)
    info["breaker"] = breaker
    return info


def gather(settings: Settings) -> dict[str, Any]:
    db = CentralDB(path=settings.central_db_path, migrations_root=settings.migrations_path)
    try:
        db.migrate()
        repo = Repository(db)
        groups = repo.agent_groups()
        names = {g.id: g.name for g in groups}
        mgs = {m.id: m for m in repo.messaging_groups()}
        provider = settings.effective_provider
        up = host_running(settings)
        return {
            "host_running": up,
            "running_host": running_host(settings),
            "channels": channel_states(settings),
            "install_id": settings.install_id,
            "provider": provider,
            "provider_note": (
                "mock model: no API key configured; replies are canned"
                if provider == "mock"
                else "Anthropic Messages API"
            ),
            "runtime": settings.runtime,
            "agent_groups": [{"id": g.id, "name": g.name, "folder": g.folder} for g in groups],
            "wirings": [
                {
                    "id": w.id,
                    "chat": f"{mgs[w.messaging_group_id].channel_type}/{mgs[w.messaging_group_id].platform_id}"
                    if w.messaging_group_id in mgs
                    else w.messaging_group_id,
                    "agent": names.get(w.agent_group_id, w.agent_group_id),
                    "engage": w.engage_mode + (f" {w.engage_pattern}" if w.engage_pattern else ""),
                    "session_mode": w.session_mode,
                    "ignored": w.ignored_message_policy,
                    "priority": w.priority,
                }
                for w in repo.wirings()
            ],
            "quarantined": [asdict(e) for e in list_quarantined(db)],
            "sessions": [
                {
                    "id": s.id,
                    "agent": names.get(s.agent_group_id, s.agent_group_id),
                    "chat": f"{mgs[s.messaging_group_id].channel_type}/{mgs[s.messaging_group_id].platform_id}"
                    if s.messaging_group_id in mgs
                    else None,
                    "thread": s.thread_id,
                    "mode": s.session_mode,
                    # The running host's published liveness; with no host, no runner runs.
                    "runner": s.runner_status if up else "stopped",
                    "last_exit_code": s.last_exit_code,
                    "last_active": s.last_active.isoformat(),
                }
                for s in repo.sessions()
            ],
        }
    finally:
        db.dispose()


def render(data: dict[str, Any], console: Console) -> None:
    state = "[green]running[/]" if data["host_running"] else "[red]not running[/]"
    console.print(f"Host: {state}   install {data['install_id']}   runtime {data['runtime']}")
    host = data.get("running_host")
    if host and "pid" in host:
        endpoint = host["base_url"] or "api.anthropic.com"
        model = (
            "mock model"
            if host["provider"] == "mock"
            else f"{host['model']} at {endpoint} ({host['credential']})"
        )
        console.print(
            f"Running host: pid {host['pid']} since {host['started_at']}, {model}, "
            f"time zone {host['timezone']}",
            highlight=False,
        )
        if not host["settings_current"]:
            console.print(
                "[yellow]The settings changed since the host started: it still uses the values "
                "above. Run `nanoclaw restart`.[/]"
            )
    if host and host["breaker"]["crashes_last_hour"]:
        breaker = host["breaker"]
        wait = (
            f"; waiting {breaker['waiting_s']:g} s before starting" if breaker["waiting_s"] else ""
        )
        console.print(
            f"[yellow]Start-up breaker: {breaker['crashes_last_hour']} crash(es) in the last "
            f"hour{wait} (`nanoclaw restart` skips the wait)[/]"
        )
    console.print(f"Model (current settings): {data['provider']} ({data['provider_note']})")
    for title, rows, columns in (
        ("Agent groups", data["agent_groups"], ["name", "folder", "id"]),
        (
            "Wirings",
            data["wirings"],
            ["chat", "agent", "engage", "session_mode", "ignored", "priority"],
        ),
        (
            "Sessions",
            data["sessions"],
            ["agent", "chat", "thread", "mode", "runner", "last_exit_code", "last_active", "id"],
        ),
        ("Channels", data.get("channels", []), ["channel", "state", "detail", "since"]),
        (
            "Quarantined sessions (unsafe file left by the sandbox)",
            data.get("quarantined", []),
            ["session_id", "problem", "cause", "quarantined_at"],
        ),
    ):
        table = Table(title=title, title_justify="left")
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
        if not rows:
            table.add_row(*(["(none)"] + [""] * (len(columns) - 1)))
        console.print(table)
