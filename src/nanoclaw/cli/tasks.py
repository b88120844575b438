"""``nanoclaw tasks``: list, pause, resume and cancel scheduled tasks (series-aware, ``--json``)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from nanoclaw.cli.session_dbs import rows_of_every_session, session_folders
from nanoclaw.scheduling.tasks import TaskControl, control_task, list_tasks

app = typer.Typer(help="Scheduled tasks: list, pause, resume, cancel (a task id or its series id).")
console = Console()
err = Console(stderr=True)


@app.command("list")
def list_(
    include_ended: Annotated[
        bool, typer.Option("--all", help="Include completed, cancelled and failed occurrences.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List scheduled tasks, one row per live occurrence (a series has at most one)."""
    rows = rows_of_every_session(
        lambda store, layout: list_tasks(store, layout, include_ended=include_ended), err=err
    )
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print("No scheduled tasks.")
        return
    table = Table(
        "series", "status", "next run (UTC)", "recurrence", "tz", "agent", "prompt", "last script"
    )
    for r in rows:
        prompt = r["prompt"] if len(r["prompt"]) <= 40 else r["prompt"][:39] + "…"
        table.add_row(
            r["series_id"],
            r["status"],
            r["process_after"] or "now",
            r["recurrence"] or "once",
            r["recurrence_tz"] or "host",
            r["agent"],
            prompt,
            r.get("last_script") or "",
        )
    console.print(table)


def _control(task_id: str, action: TaskControl, as_json: bool) -> None:
    changed: list[dict[str, Any]] = []
    with session_folders() as (store, sessions):
        for session in sessions:
            try:
                count = control_task(store, session.layout, task_id, action)
            except Exception as exc:
                err.print(f"[yellow]warning:[/] session {session.id} unwritable: {exc}")
                continue
            if count:
                changed.append({"session_id": session.id, "agent": session.agent, "rows": count})
    if as_json:
        print(json.dumps({"task": task_id, "action": action, "changed": changed}))
    if not changed:
        if not as_json:
            err.print(f"[red]error:[/] no live task or series matches {task_id!r}")
        raise typer.Exit(1)
    if not as_json:
        total = sum(c["rows"] for c in changed)
        verb = {"pause": "Paused", "resume": "Resumed", "cancel": "Cancelled"}[action]
        console.print(f"{verb} {total} occurrence(s) of {task_id}.")


@app.command()
def pause(
    task_id: Annotated[str, typer.Argument(help="Task id or series id.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Pause a task series (its pending occurrence stays, but does not run)."""
    _control(task_id, "pause", as_json)


@app.command()
def resume(
    task_id: Annotated[str, typer.Argument(help="Task id or series id.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Resume a paused task series."""
    _control(task_id, "resume", as_json)


@app.command()
def cancel(
    task_id: Annotated[str, typer.Argument(help="Task id or series id.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Cancel a task series for good (no further occurrences)."""
    _control(task_id, "cancel", as_json)
