"""``nanoclaw agents mcp|skills|packages``: an agent's MCP servers, skills and installed packages."""

from __future__ import annotations

from typing import Annotated

import typer

from nanoclaw.admin.extensions import Extensions
from nanoclaw.admin.service import AdminService, Table
from nanoclaw.cli.admin_resources import OPERATOR, JsonOpt, admin_service, done, show, show_one


def _extensions(admin: AdminService) -> Extensions:
    return Extensions(repo=admin.repo, groups_path=admin.groups_path)


mcp_app = typer.Typer(help="An agent's MCP servers: list, add, remove.", no_args_is_help=True)
skills_app = typer.Typer(
    help="An agent's skills (its own and the shared ones).", no_args_is_help=True
)
packages_app = typer.Typer(help="An agent's installed packages.", no_args_is_help=True)


@mcp_app.command("list")
def mcp_list(agent: str, as_json: JsonOpt = False) -> None:
    """The agent's MCP servers (the env shows names only)."""
    with admin_service() as a:
        show(
            _extensions(a).mcp_table(OPERATOR, a.agent(agent)),
            as_json,
        )


@mcp_app.command("add", context_settings={"allow_extra_args": False})
def mcp_add(
    agent: str,
    name: str,
    command: str,
    args: Annotated[
        list[str] | None, typer.Argument(help="The command's arguments (after --).")
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option("--env", help="KEY=VALUE for the server (no secrets); repeat."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add (or replace) a stdio MCP server; effective on the agent's next start.

    Example: nanoclaw agents mcp add Andy notes python -- -m notes_mcp --root /workspace/agent
    """
    pairs: dict[str, str] = {}
    for item in env or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--env takes KEY=VALUE, not {item!r}")
        pairs[key] = value
    with admin_service() as a:
        spec = _extensions(a).add_mcp_server(
            OPERATOR, a.agent(agent), name=name, command=command, args=list(args or []), env=pairs
        )
        done(
            f"MCP server {spec.name} added to {agent}; it starts with the agent's next runner.",
            as_json,
        )


@mcp_app.command("remove")
def mcp_remove(agent: str, name: str, as_json: JsonOpt = False) -> None:
    """Remove an MCP server."""
    with admin_service() as a:
        removed = _extensions(a).remove_mcp_server(OPERATOR, a.agent(agent), name)
    if not removed:
        raise typer.Exit(5)
    done(f"MCP server {name} removed from {agent}.", as_json)


@skills_app.command("list")
def skills_list(agent: str, as_json: JsonOpt = False) -> None:
    """Skills the agent sees: groups/<folder>/skills/ and groups/global/skills/."""
    with admin_service() as a:
        group = a.agent(agent)
        table = Table(["name", "description", "shared", "path"], title=f"Skills of {group.name}")
        for skill in _extensions(a).skills(OPERATOR, group):
            table.rows.append(
                {
                    "name": skill.name,
                    "description": skill.description,
                    "shared": "yes" if skill.shared else "",
                    "path": str(skill.folder),
                }
            )
        show(table, as_json)


@packages_app.command("list")
def packages_list(agent: str, as_json: JsonOpt = False) -> None:
    """Packages the agent has (pip, apt), its image, and the last build's outcome."""
    with admin_service() as a:
        show_one(
            _extensions(a).packages(OPERATOR, a.agent(agent)),
            as_json,
        )
