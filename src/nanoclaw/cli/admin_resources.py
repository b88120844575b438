"""``nanoclaw agents|channels|wirings|users|roles|members|sessions|approvals|dropped``.

The host operator's side of the shared admin implementation (``nanoclaw.admin.service``):
the CLI acts as the operator, who may do everything. Every list prints a rich table or,
with ``--json``, a JSON array. Exit codes: 0 ok, 1 failure, 2 bad arguments, 3 the host is
not running (approvals are answered through the running host), 5 not found.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table as RichTable

from nanoclaw.admin.service import Actor, AdminService, Table
from nanoclaw.admin.store import AdminStore
from nanoclaw.db.central import CentralDB
from nanoclaw.db.repository import Repository
from nanoclaw.errors import NanoclawError, NotFoundError, ValidationError
from nanoclaw.runtime.mounts import MountPolicy
from nanoclaw.sessions.service import SessionService
from nanoclaw.sessions.store import SessionStore
from nanoclaw.settings import load_settings

EXIT_FAILURE, EXIT_USAGE, EXIT_HOST_DOWN, EXIT_NOT_FOUND = 1, 2, 3, 5
ACTION_TIMEOUT_S = 15.0

console = Console()
err = Console(stderr=True)
OPERATOR = Actor.operator()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@contextmanager
def admin_service() -> Iterator[AdminService]:
    """An AdminService on the central DB; errors become exit codes."""
    settings = load_settings()
    db = CentralDB(path=settings.central_db_path, migrations_root=settings.migrations_path)
    try:
        db.migrate()
        repo = Repository(db)
        store = SessionStore(sessions_root=settings.sessions_path)
        yield AdminService(
            repo=repo,
            store=AdminStore(db),
            groups_path=settings.groups_path,
            sessions=SessionService(repo=repo, store=store),
            mount_policy=MountPolicy.for_install(
                allowlist_path=settings.mount_allowlist_path,
                root=settings.root,
                data=settings.data_path,
                groups=settings.groups_path,
            ),
        )
    except NotFoundError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_NOT_FOUND) from exc
    except ValidationError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_USAGE) from exc
    except NanoclawError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_FAILURE) from exc
    finally:
        db.dispose()


def show(table: Table, as_json: bool) -> None:
    if as_json:
        print(json.dumps(table.rows, default=str, indent=2))
        return
    rich = RichTable(title=table.title, title_justify="left")
    for column in table.columns:
        rich.add_column(column)
    for row in table.rows:
        rich.add_row(*(_fmt(row.get(c)) for c in table.columns))
    if not table.rows:
        rich.add_row("(none)", *[""] * (len(table.columns) - 1))
    console.print(rich)


def show_one(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(data, default=str, indent=2))
        return
    for key, value in data.items():
        console.print(f"[bold]{key}[/]: {_fmt(value)}")


def done(message: str, as_json: bool, **data: Any) -> None:
    if as_json:
        print(json.dumps({"ok": True, "message": message, **data}, default=str))
    else:
        console.print(message)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _lister(fn: Callable[[AdminService], Table]) -> Callable[[bool], None]:
    def command(as_json: JsonOpt = False) -> None:
        with admin_service() as a:
            show(fn(a), as_json)

    return command


# -- agents ------------------------------------------------------------------------------------
agents_app = typer.Typer(
    help="Agent groups: list, get, create, update, delete.", no_args_is_help=True
)
agents_app.command("list", help="List agents.")(_lister(lambda a: a.agents(OPERATOR)))


@agents_app.command("get")
def agents_get(agent: str, as_json: JsonOpt = False) -> None:
    """Show one agent (by name, folder or id)."""
    with admin_service() as a:
        group = a.agent(agent)
        row = next(r for r in a.agents(OPERATOR).rows if r["id"] == group.id)
        show_one(row, as_json)


@agents_app.command("create")
def agents_create(
    name: str,
    folder: Annotated[str | None, typer.Option(help="Folder under groups/.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an agent with its folder and memory files."""
    with admin_service() as a:
        group = a.create_agent(OPERATOR, name, folder)
        done(f"Created agent {group.name} (groups/{group.folder}/).", as_json, id=group.id)


@agents_app.command("update")
def agents_update(
    agent: str,
    name: Annotated[str | None, typer.Option(help="New display name.")] = None,
    admin_scope: Annotated[
        str | None, typer.Option(help="disabled, group or global (what the agent may read).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Rename an agent or set its admin scope."""
    with admin_service() as a:
        group = a.update_agent(OPERATOR, agent, name=name, admin_scope=admin_scope)
        done(f"Updated agent {group.name}.", as_json, id=group.id)


@agents_app.command("delete")
def agents_delete(agent: str, as_json: JsonOpt = False) -> None:
    """Delete an agent and its wirings, sessions and roles (its folder stays on disk)."""
    with admin_service() as a:
        group = a.delete_agent(OPERATOR, agent)
        done(f"Deleted agent {group.name}; groups/{group.folder}/ was kept.", as_json, id=group.id)


# -- channels (messaging groups): added to the channels app of nanoclaw.cli.channels -----------
def add_channel_commands(channels_app: typer.Typer) -> None:
    """Register list/get/policy/update/delete on the ``nanoclaw channels`` app."""
    channels_app.command("list", help="List chats (messaging groups).")(
        _lister(lambda a: a.channels(OPERATOR))
    )

    @channels_app.command("get")
    def channels_get(chat: str, as_json: JsonOpt = False) -> None:
        """Show one chat (<channel>/<platform id> or mg-… id)."""
        with admin_service() as a:
            mg = a.chat(chat)
            row = next(r for r in a.channels(OPERATOR).rows if r["id"] == mg.id)
            show_one(row, as_json)

    @channels_app.command("policy")
    def channels_policy(chat: str, policy: str, as_json: JsonOpt = False) -> None:
        """Set the unknown-sender policy: strict, request_approval or public."""
        with admin_service() as a:
            mg = a.chat(chat)
            a.set_policy(OPERATOR, mg, policy)
            done(f"Unknown senders in {mg.channel_type}/{mg.platform_id}: {policy}.", as_json)

    @channels_app.command("update")
    def channels_update(
        chat: str,
        name: Annotated[str | None, typer.Option(help="Display name.")] = None,
        denied: Annotated[
            bool | None, typer.Option("--denied/--allowed", help="Silence or re-open the chat.")
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Rename a chat, or silence (--denied) / re-open (--allowed) it."""
        with admin_service() as a:
            mg = a.chat(chat)
            a.update_chat(OPERATOR, mg, name=name, denied=denied)
            done(f"Updated {mg.channel_type}/{mg.platform_id}.", as_json)

    @channels_app.command("delete")
    def channels_delete(chat: str, as_json: JsonOpt = False) -> None:
        """Forget a chat and its wirings."""
        with admin_service() as a:
            mg = a.chat(chat)
            a.delete_chat(OPERATOR, mg)
            done(f"Deleted {mg.channel_type}/{mg.platform_id}.", as_json)


# -- wirings -----------------------------------------------------------------------------------
wirings_app = typer.Typer(help="Wirings of chats to agents.", no_args_is_help=True)
wirings_app.command("list", help="List wirings.")(_lister(lambda a: a.wirings(OPERATOR)))


@wirings_app.command("create")
def wirings_create(
    chat: Annotated[str, typer.Argument(help="<channel>/<platform id> (created if new).")],
    agent: str,
    engage: Annotated[str, typer.Option(help="pattern, mention or mention-sticky.")] = "pattern",
    pattern: Annotated[str | None, typer.Option(help="Regex for engage=pattern.")] = ".",
    session_mode: Annotated[
        str, typer.Option(help="shared, per-thread or agent-shared.")
    ] = "shared",
    sender_scope: Annotated[str, typer.Option(help="all or known.")] = "all",
    accumulate: Annotated[
        bool, typer.Option(help="Keep non-engaging messages as context.")
    ] = False,
    priority: Annotated[int, typer.Option(help="Higher wirings are considered first.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Wire a chat to an agent."""
    with admin_service() as a:
        mg = a.chat(chat, create=True)
        group = a.agent(agent)
        wiring_id = a.wire(
            OPERATOR, mg, group, engage_mode=engage, engage_pattern=pattern,
            session_mode=session_mode, sender_scope=sender_scope,
            ignored_message_policy="accumulate" if accumulate else "drop", priority=priority,
        )  # fmt: skip
        done(f"Wired {mg.channel_type}/{mg.platform_id} to {group.name}.", as_json, id=wiring_id)


@wirings_app.command("update")
def wirings_update(
    chat: str,
    agent: str,
    engage: Annotated[str | None, typer.Option(help="pattern, mention or mention-sticky.")] = None,
    pattern: Annotated[str | None, typer.Option(help="Regex for engage=pattern.")] = None,
    session_mode: Annotated[
        str | None, typer.Option(help="shared, per-thread, agent-shared.")
    ] = None,
    sender_scope: Annotated[str | None, typer.Option(help="all or known.")] = None,
    priority: Annotated[int | None, typer.Option(help="Priority.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change how a wiring engages."""
    fields: dict[str, Any] = {}
    if engage is not None:
        fields["engage_mode"] = engage
        fields["engage_pattern"] = pattern if pattern is not None else "."
    elif pattern is not None:
        fields["engage_pattern"] = pattern
    for key, value in (("session_mode", session_mode), ("sender_scope", sender_scope),
                       ("priority", priority)):  # fmt: skip
        if value is not None:
            fields[key] = value
    if not fields:
        err.print("[red]error:[/] nothing to change")
        raise typer.Exit(EXIT_USAGE)
    with admin_service() as a:
        mg, group = a.chat(chat), a.agent(agent)
        a.update_wiring(OPERATOR, mg, group, **fields)
        done(f"Updated the wiring of {mg.channel_type}/{mg.platform_id} to {group.name}.", as_json)


@wirings_app.command("delete")
def wirings_delete(chat: str, agent: str, as_json: JsonOpt = False) -> None:
    """Unwire a chat from an agent."""
    with admin_service() as a:
        mg, group = a.chat(chat), a.agent(agent)
        a.unwire(OPERATOR, mg, group)
        done(f"Unwired {mg.channel_type}/{mg.platform_id} from {group.name}.", as_json)


# -- users, roles, members ---------------------------------------------------------------------
users_app = typer.Typer(help="Users (<channel>:<handle>).", no_args_is_help=True)
users_app.command("list", help="List users with roles and memberships.")(
    _lister(lambda a: a.users(OPERATOR))
)


@users_app.command("get")
def users_get(user: str, as_json: JsonOpt = False) -> None:
    """Show one user."""
    with admin_service() as a:
        row = next((r for r in a.users(OPERATOR).rows if r["user"] == user), None)
        if row is None:
            raise NotFoundError("user", user)
        show_one(row, as_json)


@users_app.command("create")
def users_create(
    user: Annotated[str, typer.Argument(help="<channel>:<handle>")],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create (or rename) a user."""
    with admin_service() as a:
        a.user_ref(user)
        a.repo.upsert_user(
            user, kind=user.split(":", 1)[0], display_name=name or user.split(":", 1)[1]
        )
        done(f"User {user} saved.", as_json)


roles_app = typer.Typer(
    help="Roles: owner (global) and admin (global or of one agent).", no_args_is_help=True
)
roles_app.command("list", help="List role grants.")(_lister(lambda a: a.roles(OPERATOR)))

AgentOpt = Annotated[str | None, typer.Option("--agent", help="Scope the role to one agent.")]


@roles_app.command("grant")
def roles_grant(user: str, role: str, agent: AgentOpt = None, as_json: JsonOpt = False) -> None:
    """Grant owner or admin (global, or of --agent)."""
    with admin_service() as a:
        group = a.agent(agent) if agent else None
        a.grant(OPERATOR, a.user_ref(user), role, group)
        done(f"Granted {role}{f' of {group.name}' if group else ''} to {user}.", as_json)


@roles_app.command("revoke")
def roles_revoke(user: str, role: str, agent: AgentOpt = None, as_json: JsonOpt = False) -> None:
    """Revoke a role (the last owner cannot be revoked)."""
    with admin_service() as a:
        group = a.agent(agent) if agent else None
        a.revoke(OPERATOR, a.user_ref(user), role, group)
        done(f"Revoked {role}{f' of {group.name}' if group else ''} from {user}.", as_json)


members_app = typer.Typer(help="Members of agents (who may talk to them).", no_args_is_help=True)


@members_app.command("list")
def members_list(
    agent: Annotated[str | None, typer.Argument()] = None, as_json: JsonOpt = False
) -> None:
    """List members (of one agent, or all)."""
    with admin_service() as a:
        show(a.members(OPERATOR, a.agent(agent) if agent else None), as_json)


@members_app.command("add")
def members_add(agent: str, user: str, as_json: JsonOpt = False) -> None:
    """Make a user a member of an agent."""
    with admin_service() as a:
        group = a.agent(agent)
        a.add_member(OPERATOR, group, a.user_ref(user))
        done(f"{user} is now a member of {group.name}.", as_json)


@members_app.command("remove")
def members_remove(agent: str, user: str, as_json: JsonOpt = False) -> None:
    """Remove a member."""
    with admin_service() as a:
        group = a.agent(agent)
        a.remove_member(OPERATOR, group, a.user_ref(user))
        done(f"{user} is no longer a member of {group.name}.", as_json)


# -- sessions, dropped messages ------------------------------------------------------------------
sessions_app = typer.Typer(help="Agent sessions.", no_args_is_help=True)


@sessions_app.command("list")
def sessions_list(
    agent: Annotated[str | None, typer.Argument()] = None, as_json: JsonOpt = False
) -> None:
    """List active sessions (of one agent, or all)."""
    with admin_service() as a:
        show(a.sessions(OPERATOR, a.agent(agent) if agent else None), as_json)


@sessions_app.command("get")
def sessions_get(session_id: str, as_json: JsonOpt = False) -> None:
    """Show one session."""
    with admin_service() as a:
        show_one(a.session(OPERATOR, session_id), as_json)


dropped_app = typer.Typer(help="Messages that reached no agent, and why.", no_args_is_help=True)
dropped_app.command("list", help="List the drop audit.")(_lister(lambda a: a.dropped(OPERATOR)))


# -- approvals -----------------------------------------------------------------------------------
approvals_app = typer.Typer(help="Approval requests (cards).", no_args_is_help=True)


@approvals_app.command("list")
def approvals_list(
    status: Annotated[
        str, typer.Option(help="pending, approved, denied, expired or all.")
    ] = "pending",
    as_json: JsonOpt = False,
) -> None:
    """List approval requests."""
    with admin_service() as a:
        show(a.approvals(OPERATOR, status=None if status == "all" else status), as_json)


@approvals_app.command("get")
def approvals_get(approval_id: str, as_json: JsonOpt = False) -> None:
    """Show one approval request."""
    with admin_service() as a:
        show_one(a.approval(OPERATOR, approval_id), as_json)


def _answer(approval_id: str, option: int | None, deny: bool, as_json: bool) -> None:
    from nanoclaw.admin.bootstrap import operator_handle
    from nanoclaw.channels.cli.client import HostNotRunningError
    from nanoclaw.permissions.approvals import DENY, REJECT, options_of

    with admin_service() as a:
        approval = a.store.approval(approval_id)
        if approval is None:
            raise NotFoundError("approval", approval_id)
        options = options_of(approval)
        if deny:
            value = REJECT if approval.kind == "channel" else DENY
        else:
            index = option or 1
            if not 1 <= index <= len(options):
                raise ValidationError(f"pick an option from 1 to {len(options)}", field="option")
            value = options[index - 1]["value"]
    settings = load_settings()
    try:
        text = asyncio.run(_send_action(settings.cli_socket, operator_handle(), approval_id, value))
    except HostNotRunningError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_HOST_DOWN) from exc
    ok = not text.startswith(("You may not", "No request", "Unknown choice", "Not accepted"))
    if as_json:
        print(json.dumps({"ok": ok, "message": text}))
    else:
        (console if ok else err).print(text)
    if not ok:
        raise typer.Exit(EXIT_FAILURE)


async def _send_action(socket_path: Any, handle: str, question_id: str, value: str) -> str:
    from nanoclaw.channels.cli.client import connect
    from nanoclaw.channels.cli.protocol import encode

    reader, writer = await connect(socket_path)
    try:
        writer.write(encode({"type": "action", "chat": "local", "sender": handle,
                             "question_id": question_id, "value": value}))  # fmt: skip
        await writer.drain()
        while True:
            line = await asyncio.wait_for(reader.readline(), timeout=ACTION_TIMEOUT_S)
            if not line:
                return "Not accepted: the host closed the connection."
            frame = json.loads(line)
            if frame.get("type") == "action_result":
                return str(frame.get("text"))
            if frame.get("type") == "error":
                return f"Not accepted: {frame.get('error')}"
    finally:
        writer.close()


@approvals_app.command("approve")
def approvals_approve(
    approval_id: str,
    option: Annotated[int | None, typer.Option(help="Option number (default 1).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve a request through the running host, as the operator (you, the owner)."""
    _answer(approval_id, option, False, as_json)


@approvals_app.command("deny")
def approvals_deny(approval_id: str, as_json: JsonOpt = False) -> None:
    """Deny (or reject) a request through the running host."""
    _answer(approval_id, None, True, as_json)
