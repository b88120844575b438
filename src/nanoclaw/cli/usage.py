"""``nanoclaw usage``: tokens and cost per agent group, session, day or model; daily budgets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import date, timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from nanoclaw.db.central import CentralDB
from nanoclaw.db.models import ContainerConfig
from nanoclaw.db.repository import Repository
from nanoclaw.errors import NanoclawError
from nanoclaw.sessions.service import SessionService
from nanoclaw.sessions.store import SessionStore
from nanoclaw.usage.ledger import GroupBy, UsageLedger

app = typer.Typer(help="Token usage and cost (per agent, session, day or model) and daily budgets.")
console = Console()
err = Console(stderr=True)


@contextmanager
def _ledger() -> Iterator[tuple[Repository, UsageLedger]]:
    from nanoclaw.cli.context import settings

    s = settings()
    db = CentralDB(path=s.central_db_path, migrations_root=s.migrations_path)
    try:
        db.migrate()
        repo = Repository(db)
        store = SessionStore(sessions_root=s.sessions_path)
        ledger = UsageLedger(settings=s, repo=repo, sessions=SessionService(repo=repo, store=store))
        yield repo, ledger
    finally:
        db.dispose()


@app.callback(invoke_without_command=True)
def show(
    ctx: typer.Context,
    by: Annotated[str, typer.Option(help="Group by: group, session, day or model.")] = "group",
    days: Annotated[int, typer.Option(min=1, help="Only the last N days (host time zone).")] = 30,
    agent: Annotated[str | None, typer.Option(help="Only this agent (name, folder or id).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show usage; rows the host has not copied yet are read from the sessions first."""
    if ctx.invoked_subcommand is not None:
        return
    if by not in ("group", "session", "day", "model"):
        err.print("[red]error:[/] --by must be group, session, day or model")
        raise typer.Exit(2)
    key: GroupBy = by  # type: ignore[assignment]
    with _ledger() as (repo, ledger):
        try:
            ids = [repo.agent_group(agent).id] if agent else None
        except NanoclawError as exc:
            err.print(f"[red]error:[/] {exc}")
            raise typer.Exit(1) from exc
        ledger.ingest_all()
        since = date.fromisoformat(ledger.today()) - timedelta(days=days - 1)
        totals = ledger.totals(by=key, since=since, agent_group_ids=ids)
        names = {g.id: g.name for g in repo.agent_groups()}
    if as_json:
        console.print_json(json.dumps([asdict(t) for t in totals]))
        return
    table = Table(title=f"Usage by {by}, last {days} day(s)")
    for column in (
        "" if by != "group" else "agent",
        "turns",
        "input",
        "output",
        "cache read",
        "cache write",
        "cost (USD)",
    ):
        table.add_column(column or by, justify="left" if column in ("", "agent") else "right")
    for t in totals:
        label = names.get(t.key, t.key) if by == "group" else t.key
        table.add_row(
            label,
            str(t.turns),
            f"{t.input_tokens:,}",
            f"{t.output_tokens:,}",
            f"{t.cache_read_tokens:,}",
            f"{t.cache_write_tokens:,}",
            f"{t.cost_usd:.4f}",
        )
    if not totals:
        console.print("No usage recorded.")
        return
    console.print(table)


@app.command("budget")
def budget(
    agent: Annotated[str, typer.Argument(help="Agent name, folder or id.")],
    usd: Annotated[str, typer.Argument(help="Daily budget in US dollars, or 'off'.")],
) -> None:
    """Set (or turn off) an agent's daily budget; when spent, its turns pause until tomorrow."""
    value: float | None
    if usd.lower() in ("off", "none", "0"):
        value = None
    else:
        try:
            value = float(usd)
        except ValueError as exc:
            err.print("[red]error:[/] the budget must be a number of US dollars, or 'off'")
            raise typer.Exit(2) from exc
        if value <= 0:
            err.print("[red]error:[/] the budget must be positive (or 'off')")
            raise typer.Exit(2)
    with _ledger() as (repo, ledger):
        try:
            group = repo.agent_group(agent)
        except NanoclawError as exc:
            err.print(f"[red]error:[/] {exc}")
            raise typer.Exit(1) from exc
        repo.container_config(group.id)
        with repo.db.session() as s:
            cfg = s.get(ContainerConfig, group.id)
            assert cfg is not None
            cfg.daily_budget_usd = value
        spent = ledger.spent(group.id)
    shown = "off" if value is None else f"${value:.2f} a day"
    console.print(f"Daily budget of {group.name}: {shown} (spent today: ${spent:.4f}).")
