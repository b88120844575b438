"""``nanoclaw import``: plan, confirm, back up, import through the admin service, report."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from nanoclaw.cli.admin_resources import admin_service
from nanoclaw.errors import ValidationError
from nanoclaw.importer import hostctl
from nanoclaw.importer.detect import candidate_roots, detect
from nanoclaw.importer.model import SourceInstall, SourceKind, SourceModel
from nanoclaw.importer.plan import Action
from nanoclaw.importer.report import backup, write_report
from nanoclaw.importer.run import ImportRun
from nanoclaw.importer.v1 import read_v1
from nanoclaw.importer.v2 import read_v2
from nanoclaw.settings import load_settings

console = Console()
err = Console(stderr=True)

EXIT_OK = 0
EXIT_PROBLEMS = 1  # imported, but some steps failed (listed in the report)
EXIT_USAGE = 2
EXIT_NONE_FOUND = 5  # --check: no install found


def _now() -> datetime:
    return datetime.now(UTC)


def _read(install: SourceInstall, now: datetime) -> SourceModel:
    return read_v1(install, now=now) if install.kind is SourceKind.V1 else read_v2(install, now=now)


def _choose_owner(model: SourceModel) -> str | None:
    """Ask which sender is the owner (v1's messages show who talked to the assistant)."""
    if not sys.stdin.isatty():
        return None
    people = model.users[:9]
    if people:
        console.print("Who is the owner? People seen in the old install:")
        for i, user in enumerate(people, 1):
            console.print(
                f"  {i}. {user.user_id}  {user.display_name or ''}  ({user.messages} messages)"
            )
    answer = typer.prompt("Number, or CHANNEL:HANDLE", default="1" if people else "").strip()
    if answer.isdigit() and 1 <= int(answer) <= len(people):
        return people[int(answer) - 1].user_id
    return answer if ":" in answer else None


def import_install(
    path: Annotated[
        Path | None,
        typer.Argument(help="The install to import (default: look in the usual places)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and stop.")] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask; needs --owner unless an owner exists.")
    ] = False,
    owner: Annotated[
        str | None, typer.Option(help="The owner as CHANNEL:HANDLE, e.g. telegram:123456.")
    ] = None,
    fire_missed: Annotated[
        bool, typer.Option("--fire-missed", help="Run one-off tasks whose time has passed, now.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Only say whether an install is found (exit 5 if none).")
    ] = False,
) -> None:
    """Move in from a NanoClaw v1 or TypeScript v2 install; the source is only read."""
    settings = load_settings()
    started = _now()
    try:
        install = detect(path, project_root=settings.root, home=Path.home())
    except ValidationError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_USAGE) from exc
    if install is None:
        looked = ", ".join(str(p) for p in candidate_roots(settings.root, Path.home()))
        if not check:
            console.print(
                f"No NanoClaw install found (looked in: {looked}). Name one: nanoclaw import PATH"
            )
        raise typer.Exit(EXIT_NONE_FOUND if check else EXIT_OK)
    label = "NanoClaw v1" if install.kind is SourceKind.V1 else "TypeScript NanoClaw v2"
    if check:
        console.print(f"{install.kind.value} {install.root}")
        raise typer.Exit(EXIT_OK)
    if owner is not None and ":" not in owner:
        err.print(f"[red]error:[/] name the owner as CHANNEL:HANDLE, not {owner!r}")
        raise typer.Exit(EXIT_USAGE)
    model = _read(install, started)
    with admin_service() as admin:
        has_owner = admin.repo.has_owner() or any(r.role == "owner" for r in model.roles)
        if not dry_run and yes and owner is None and not has_owner:
            err.print(
                "[red]error:[/] --yes needs --owner CHANNEL:HANDLE: this install has no owner yet"
            )
            raise typer.Exit(EXIT_USAGE)

        def import_run(*, execute: bool, owner: str | None) -> ImportRun:
            return ImportRun(
                settings=settings,
                admin=admin,
                clock=_now,
                owner=owner,
                fire_missed=fire_missed,
                execute=execute,
            )

        planned = import_run(execute=False, owner=owner).run(model)
        if not json_out:
            console.print(f"[bold]Import from {label} at {install.root}[/]")
            console.print(planned.plan.as_text(), markup=False, highlight=False)
        if dry_run:
            report_path, body = write_report(
                logs_dir=settings.logs_path,
                model=model,
                outcome=planned,
                dry_run=True,
                started=started,
                backup_dir=None,
                host=[],
            )
            _finish(body, report_path, json_out=json_out)
            return
        if not yes:
            if not sys.stdin.isatty():
                err.print(
                    "[red]error:[/] no terminal to confirm on: run again with --yes (and --owner)"
                )
                raise typer.Exit(EXIT_USAGE)
            if owner is None and not has_owner:
                owner = _choose_owner(model)
            if not typer.confirm("Import this?", default=False):
                console.print("Nothing changed.")
                raise typer.Exit(EXIT_OK)
        host: list[str] = []
        was_running = hostctl.host_running(settings.data_path)
        if was_running:
            console.print("Stopping the host for the import …")
            hostctl.stop_host(settings.data_path)
            host.append("stopped")
        try:
            backup_dir = backup(
                central_db=settings.central_db_path,
                groups=settings.groups_path,
                data_dir=settings.data_path,
                at=started,
            )
            outcome = import_run(execute=True, owner=owner).run(model)
        finally:
            if was_running:
                console.print("Starting the host again …")
                try:
                    hostctl.start_host(settings.root, settings.data_path, settings.logs_path)
                    host.append("started")
                except (RuntimeError, OSError) as exc:
                    err.print(f"[red]error:[/] the host did not start again: {exc}")
                    host.append(f"start failed: {exc}")
        report_path, body = write_report(
            logs_dir=settings.logs_path,
            model=model,
            outcome=outcome,
            dry_run=False,
            started=started,
            backup_dir=backup_dir,
            host=host,
        )
    _finish(body, report_path, json_out=json_out)
    if outcome.problems:
        raise typer.Exit(EXIT_PROBLEMS)


def _finish(body: dict[str, object], report_path: Path, *, json_out: bool) -> None:
    if json_out:
        typer.echo(json.dumps({**body, "report": str(report_path)}, indent=2))
        return
    plan = body["plan"]
    assert isinstance(plan, list)
    created = sum(1 for i in plan if i["action"] == Action.CREATE.value)
    reused = sum(1 for i in plan if i["action"] == Action.REUSE.value)
    verb = "would create" if body["dry_run"] else "created"
    console.print(f"{verb} {created}, reused {reused}.")
    problems = body["problems"]
    assert isinstance(problems, list)
    for p in problems:
        err.print(f"[yellow]![/] {p['step']}: {p['error']}")
    flagged = body["flagged_files"]
    assert isinstance(flagged, list)
    for f in flagged:
        console.print(f"[yellow]check[/] {f} (refers to v1-only machinery)")
    todo = body["todo"]
    assert isinstance(todo, list)
    if todo:
        console.print("[bold]Still to do:[/]")
        for t in todo:
            console.print(f"  - {t}")
    console.print(f"Report: {report_path}")
