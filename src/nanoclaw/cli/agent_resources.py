"""``nanoclaw destinations|mounts`` and ``nanoclaw agents restart``: the gated agent settings.

The operator's side of the same admin service the chat commands and the agents use. A
destination change is re-projected into the agent's live sessions at once; a mount is
checked against the mount allowlist now and applies from the agent's next start; a restart
asks every running runner of the agent to stop after its turn (with ``--message`` it
starts again and reads the message first). The CLI writes to the session folders, so a
restart needs no running host to be recorded, but only a running host restarts runners.
"""

from __future__ import annotations

from typing import Annotated

import typer

from nanoclaw.cli.admin_resources import OPERATOR, JsonOpt, admin_service, agents_app, done, show

destinations_app = typer.Typer(
    help="Where an agent may send: other agents and chats (name map and ACL).",
    no_args_is_help=True,
)


@destinations_app.command("list")
def destinations_list(agent: str, as_json: JsonOpt = False) -> None:
    """List an agent's destinations."""
    with admin_service() as a:
        show(a.destinations(OPERATOR, a.agent(agent)), as_json)


@destinations_app.command("add")
def destinations_add(
    agent: str,
    name: str,
    to_agent: Annotated[str | None, typer.Option("--agent", help="Link to this agent.")] = None,
    to_chat: Annotated[
        str | None, typer.Option("--chat", help="Link to this chat (<channel>/<id> or mg-…).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Link AGENT to another agent (--agent) or a chat (--chat) under NAME."""
    with admin_service() as a:
        group = a.agent(agent)
        local = a.add_destination(
            OPERATOR,
            group,
            name,
            target_agent=a.agent(to_agent) if to_agent else None,
            target_chat=a.chat(to_chat) if to_chat else None,
        )
        done(f"{group.name} can now send to {local}.", as_json, name=local)


@destinations_app.command("remove")
def destinations_remove(agent: str, name: str, as_json: JsonOpt = False) -> None:
    """Remove one of AGENT's destinations."""
    with admin_service() as a:
        group = a.agent(agent)
        a.remove_destination(OPERATOR, group, name)
        done(f"Removed destination {name} of {group.name}.", as_json)


mounts_app = typer.Typer(
    help="Extra host folders mounted into an agent's sandbox (checked against the allowlist).",
    no_args_is_help=True,
)


@mounts_app.command("list")
def mounts_list(agent: str, as_json: JsonOpt = False) -> None:
    """List an agent's extra mounts."""
    with admin_service() as a:
        show(a.mounts(OPERATOR, a.agent(agent)), as_json)


@mounts_app.command("add")
def mounts_add(
    agent: str,
    host_path: str,
    container_path: Annotated[
        str | None, typer.Option(help="Name under /workspace/extra (default: the folder name).")
    ] = None,
    rw: Annotated[bool, typer.Option("--rw", help="Writable, if the allowlist allows.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Mount HOST_PATH into AGENT's sandbox from its next start."""
    with admin_service() as a:
        group = a.agent(agent)
        entry = a.add_mount(
            OPERATOR, group, host_path, container_path=container_path, read_write=rw
        )
        mode = "read-only" if entry["readonly"] else "read-write"
        done(
            f"{group.name} gets {entry['hostPath']} at /workspace/extra/{entry['containerPath']}"
            f" ({mode}) from its next start (nanoclaw agents restart {group.name}).",
            as_json,
            mount=entry,
        )


@mounts_app.command("remove")
def mounts_remove(agent: str, container_path: str, as_json: JsonOpt = False) -> None:
    """Remove an extra mount (from the agent's next start)."""
    with admin_service() as a:
        group = a.agent(agent)
        a.remove_mount(OPERATOR, group, container_path)
        done(f"Removed the mount {container_path} of {group.name}.", as_json)


@agents_app.command("restart")
def agents_restart(
    agent: str,
    message: Annotated[
        str | None, typer.Option(help="A note the agent reads first when it starts again.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop the agent's running sessions after their turn (with --message: start them again)."""
    with admin_service() as a:
        group = a.agent(agent)
        count = a.restart_agent(OPERATOR, group, message)
        done(f"Restarting {count} running session(s) of {group.name}.", as_json, sessions=count)
