"""``nanoclaw messages``: list inbound messages that ended ``failed``, and retry one."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from nanoclaw.cli.session_dbs import rows_of_every_session, session_folders
from nanoclaw.db.central import CentralDB
from nanoclaw.routing.unhandled import list_unhandled
from nanoclaw.sessions.failed import list_failed, retry_failed

app = typer.Typer(help="Inbound messages: list the failed ones, retry one.")
console = Console()
err = Console(stderr=True)
PREVIEW_CHARS = 50


@app.command("failed")
def failed(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List messages the agent gave up on (its runner crashed or hung on each try)."""
    rows = rows_of_every_session(list_failed, err=err) + _unhandled_rows()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print("No failed messages.")
        return
    table = Table("id", "kind", "received (UTC)", "tries", "chat", "agent", "text")
    for r in rows:
        text = (
            r["text"] if len(r["text"]) <= PREVIEW_CHARS else r["text"][: PREVIEW_CHARS - 1] + "…"
        )
        chat = f"{r['channel_type']}/{r['platform_id']}" if r["channel_type"] else "-"
        table.add_row(r["id"], r["kind"], r["timestamp"], str(r["tries"]), chat, r["agent"], text)
    console.print(table)
    console.print("Retry one with: nanoclaw messages retry <id> (unhandled-… ones: send again)")


def _unhandled_rows() -> list[dict[str, object]]:
    """Accepted messages the router could not hand to any session (no agent, not retryable)."""
    from nanoclaw.cli.context import settings

    s = settings()
    db = CentralDB(path=s.central_db_path, migrations_root=s.migrations_path)
    try:
        db.migrate()
        return [{**r.to_dict(), "session_id": None, "agent": "-"} for r in list_unhandled(db)]
    finally:
        db.dispose()


@app.command("retry")
def retry(
    message_id: Annotated[str, typer.Argument(help="The failed message's id (see `failed`).")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Put a failed message back in its session's queue with a fresh try count."""
    retried: list[str] = []
    with session_folders() as (store, sessions):
        for session in sessions:
            try:
                if retry_failed(store, session.layout, message_id):
                    retried.append(session.id)
            except Exception as exc:
                err.print(f"[yellow]warning:[/] session {session.id} unwritable: {exc}")
    if as_json:
        print(json.dumps({"id": message_id, "sessions": retried}))
    if not retried:
        if not as_json:
            err.print(f"[red]error:[/] no failed chat or task message has id {message_id!r}")
        raise typer.Exit(5)
    if not as_json:
        console.print(f"Queued {message_id} again; the agent will pick it up within a second.")
