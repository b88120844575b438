"""Admin chat commands (``/wire``, ``/grant``, …) for owners and admins in any paired chat.

The router calls ``handle`` before any agent sees a message. It first lets the approval
flows take a numbered answer to an open card, then runs admin commands. Commands are
case-insensitive. ``/help`` answers everyone with the commands they may use; for any other
command non-admins get "Permission denied" as a reply through the chat's adapter, and the
command never reaches an agent. ``/clear`` is left to the command gate (admins only) and the agent's runner.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from nanoclaw.admin.service import ENGAGE_MODES, SESSION_MODES, Actor, AdminService
from nanoclaw.channels.base import InboundEvent
from nanoclaw.db.models import AgentGroup, MessagingGroup, PendingApproval
from nanoclaw.db.repository import Membership
from nanoclaw.errors import NanoclawError, NotFoundError, PermissionDeniedError, ValidationError
from nanoclaw.executors import Executors
from nanoclaw.permissions.access import is_any_admin
from nanoclaw.permissions.approvals import APPROVE, DENY, REJECT, ApprovalService, options_of
from nanoclaw.routing.command_gate import command_of

log = logging.getLogger("nanoclaw.admin.commands")

Reply = Callable[[InboundEvent, str], Awaitable[None]]


@dataclass(frozen=True)
class CommandContext:
    event: InboundEvent
    mg: MessagingGroup
    actor: Actor
    args: list[str]


Handler = Callable[[CommandContext], Awaitable[str]]


@dataclass(frozen=True)
class Command:
    usage: str
    summary: str
    handler: Handler | None  # None: passes on to the agent (after the command gate)
    public: bool = False  # anyone may run it (``/help``); the others need an admin


class UsageError(ValidationError):
    pass


class ChatCommands:
    """Implements the router's ``HostCommands`` seam."""

    def __init__(
        self, *, executors: Executors, admin: AdminService, approvals: ApprovalService, reply: Reply
    ) -> None:
        self.executors = executors
        self.admin = admin
        self.approvals = approvals
        self.reply = reply
        self.commands: dict[str, Command] = {}
        self._register_builtin()

    def register(
        self,
        name: str,
        usage: str,
        summary: str,
        handler: Handler | None,
        *,
        public: bool = False,
    ) -> None:
        """Add or replace a command (e.g. ``/tasks`` and ``/usage`` from their own modules)."""
        self.commands[name] = Command(usage, summary, handler, public)

    async def handle(
        self,
        event: InboundEvent,
        mg: MessagingGroup,
        membership: Membership | None,
        open_cards: Sequence[PendingApproval],
    ) -> bool:
        """Offer the message to an open card (``open_cards``: the chat's, read with the route's
        facts), then to the host's commands."""
        if event.message.kind != "chat":
            return False
        if await self.approvals.intercept(event, membership, open_cards):
            return True
        name = command_of(event.message.text)
        if name is None or name not in self.commands:
            return False
        command = self.commands[name]
        if command.handler is None:
            return False  # e.g. /clear: the command gate decides, the agent's runner acts
        if not command.public and not is_any_admin(membership):
            await self.reply(event, f"Permission denied: {name} requires admin access.")
            return True
        try:
            args = shlex.split(event.message.text.strip())[1:]
        except ValueError as exc:
            await self.reply(
                event, f"Could not read the arguments ({exc}).\nUsage: {command.usage}"
            )
            return True
        ctx = CommandContext(event, mg, Actor.user(membership), args)
        try:
            text = await command.handler(ctx)
        except PermissionDeniedError as exc:
            text = f"Permission denied: {exc}".replace(
                "Permission denied: permission denied:", "Permission denied:"
            )
        except UsageError as exc:
            text = f"{exc}\nUsage: {command.usage}"
        except (ValidationError, NotFoundError) as exc:
            text = f"Error: {exc}\nUsage: {command.usage}"
        except NanoclawError as exc:
            text = f"Error: {exc}"
        await self.reply(event, text)
        return True

    # -- helpers -------------------------------------------------------------------------------
    async def _chat(self, ctx: CommandContext, ref: str, *, create: bool = False) -> MessagingGroup:
        if ref in ("here", "."):
            return ctx.mg
        return await self.executors.central.run(
            self.admin.chat, ref, default_channel=ctx.event.channel_type, create=create
        )

    async def _user(self, ctx: CommandContext, ref: str) -> str:
        return await self.executors.central.run(
            self.admin.user_ref, ref, default_channel=ctx.event.channel_type
        )

    async def agent(self, key: str) -> AgentGroup:
        """The agent a command names (``AdminService.agent`` on the central thread)."""
        return await self.executors.central.run(self.admin.agent, key)

    async def _run(self, fn: Callable[..., object], *args: object, **kwargs: object) -> object:
        return await self.executors.central.run(fn, *args, **kwargs)

    # -- built-in commands ---------------------------------------------------------------------
    def _register_builtin(self) -> None:
        r = self.register
        r(
            "/help",
            "/help [command]",
            "List the commands you may use, or show one command's usage.",
            self._help,
            public=True,
        )
        r(
            "/status",
            "/status",
            "Counts of agents, chats, wirings, sessions and open approvals.",
            self._status,
        )
        r("/agents", "/agents", "List the agents you administer.", self._agents)
        r(
            "/channels",
            "/channels",
            "List chats with their unknown-sender policy and agents.",
            self._channels,
        )
        r(
            "/wire",
            "/wire <chat> <agent> [pattern <regex> | mention | mention-sticky] "
            "[shared | per-thread | agent-shared]",
            "Wire a chat to an agent (default: pattern '.', shared).",
            self._wire,
        )
        r(
            "/unwire",
            "/unwire <chat> <agent>",
            "Remove the wiring of a chat to an agent.",
            self._unwire,
        )
        r(
            "/engage",
            "/engage <chat> <agent> <pattern <regex> | mention | mention-sticky>",
            "Change when an agent answers in a chat.",
            self._engage,
        )
        r(
            "/policy",
            "/policy <chat> <strict | request_approval | public>",
            "What happens when an unknown sender writes in a chat.",
            self._policy,
        )
        r(
            "/destinations",
            "/destinations <agent> [add <name> agent <agent> | add <name> chat <chat>"
            " | remove <name>]",
            "List an agent's destinations, or link it to another agent or a chat.",
            self._destinations,
        )
        r(
            "/mounts",
            "/mounts <agent> [add <host path> [container path] [rw] | remove <container path>]",
            "List an agent's extra mounts, or add one (checked against the allowlist; from"
            " its next start).",
            self._mounts,
        )
        r(
            "/restart",
            "/restart <agent> [note …]",
            "Restart the agent's running sessions after their turn; with a note, they start"
            " again and read it first.",
            self._restart,
        )
        r("/users", "/users", "List users with their roles and memberships.", self._users)
        r(
            "/grant",
            "/grant <user> <owner | admin> [agent]",
            "Grant a role (admin of one agent, or global without an agent).",
            self._grant,
        )
        r("/revoke", "/revoke <user> <owner | admin> [agent]", "Revoke a role.", self._revoke)
        r(
            "/members",
            "/members <agent> [add <user> | remove <user>]",
            "List, add or remove members of an agent.",
            self._members,
        )
        r("/pending", "/pending", "List open approval requests you may answer.", self._pending)
        r(
            "/approve",
            "/approve <request id> [option number]",
            "Approve a request (default: option 1).",
            self._approve,
        )
        r("/deny", "/deny <request id>", "Deny or reject a request.", self._deny)
        r(
            "/tasks",
            "/tasks [list [agent] | pause <id> | resume <id> | cancel <id>]",
            "List scheduled tasks, or pause, resume or cancel a task series.",
            self._tasks,
        )
        r(
            "/usage",
            "/usage [agent]",
            "Token usage and cost (not available in this build).",
            self._unavailable("/usage"),
        )
        r(
            "/clear",
            "/clear",
            "Reset the conversation of this chat's agent (admins; done by the agent).",
            None,
        )

    async def _help(self, ctx: CommandContext) -> str:
        """Everyone gets an answer, listing only the commands they may use (DESIGN §7)."""
        admin = ctx.actor.kind == "operator" or is_any_admin(ctx.actor.membership)
        usable = {n: c for n, c in self.commands.items() if admin or c.public}
        if ctx.args:
            name = ctx.args[0].lower()
            name = name if name.startswith("/") else f"/{name}"
            command = usable.get(name)
            if command is None:
                raise UsageError(f"No command {name} you may use.")
            return f"{command.usage}\n{command.summary}"
        lines = ["Admin commands:" if admin else "Commands you may use:"]
        lines += [f"{c.usage}\n    {c.summary}" for c in usable.values()]
        if admin:
            lines.append(
                "<chat>: 'here', a chat id (mg-…), <channel>/<id>, or an id on this channel. "
                "<user>: <channel>:<handle>, or a handle on this channel."
            )
        else:
            lines.append(
                "Anything else you write goes to the agent. The other commands need an admin."
            )
        return "\n".join(lines)

    async def _status(self, ctx: CommandContext) -> str:
        data = await self._run(self.admin.status, ctx.actor)
        assert isinstance(data, dict)
        return "Status: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in data.items())

    async def _agents(self, ctx: CommandContext) -> str:
        return (await self.executors.central.run(self.admin.agents, ctx.actor)).as_text()

    async def _channels(self, ctx: CommandContext) -> str:
        return (await self.executors.central.run(self.admin.channels, ctx.actor)).as_text()

    async def _users(self, ctx: CommandContext) -> str:
        return (await self.executors.central.run(self.admin.users, ctx.actor)).as_text()

    async def _pending(self, ctx: CommandContext) -> str:
        return (await self.executors.central.run(self.admin.approvals, ctx.actor)).as_text()

    def _engage_args(self, words: list[str]) -> tuple[dict[str, object], list[str]]:
        """Parse ``[pattern <regex> | mention | mention-sticky]`` from the front of ``words``."""
        fields: dict[str, object] = {}
        rest = list(words)
        if rest and rest[0] in ENGAGE_MODES:
            mode = rest.pop(0)
            fields["engage_mode"] = mode
            if mode == "pattern":
                if not rest:
                    raise UsageError("pattern needs a regular expression ('.' answers everything).")
                fields["engage_pattern"] = rest.pop(0)
        return fields, rest

    async def _wire(self, ctx: CommandContext) -> str:
        if len(ctx.args) < 2:
            raise UsageError("Name a chat and an agent.")
        chat = await self._chat(ctx, ctx.args[0], create=True)
        agent = await self.agent(ctx.args[1])
        fields, rest = self._engage_args(ctx.args[2:])
        session_mode = "shared"
        if rest:
            if rest[0] not in SESSION_MODES:
                raise UsageError(f"Unknown option {rest[0]!r}.")
            session_mode = rest.pop(0)
        if rest:
            raise UsageError(f"Unexpected {' '.join(rest)!r}.")
        mode = str(fields.get("engage_mode", "pattern"))
        pattern = fields.get("engage_pattern", "." if mode == "pattern" else None)
        await self.executors.central.run(
            self.admin.wire,
            ctx.actor,
            chat,
            agent,
            engage_mode=mode,
            engage_pattern=str(pattern) if pattern is not None else None,
            session_mode=session_mode,
        )
        how = f"{mode} {pattern}" if mode == "pattern" else mode
        return (
            f"Wired {chat.channel_type}/{chat.platform_id} to {agent.name} ({how}, {session_mode})."
        )

    async def _unwire(self, ctx: CommandContext) -> str:
        if len(ctx.args) != 2:
            raise UsageError("Name a chat and an agent.")
        chat = await self._chat(ctx, ctx.args[0])
        agent = await self.agent(ctx.args[1])
        await self.executors.central.run(self.admin.unwire, ctx.actor, chat, agent)
        return f"Unwired {chat.channel_type}/{chat.platform_id} from {agent.name}."

    async def _engage(self, ctx: CommandContext) -> str:
        if len(ctx.args) < 3:
            raise UsageError("Name a chat, an agent and an engage mode.")
        chat = await self._chat(ctx, ctx.args[0])
        agent = await self.agent(ctx.args[1])
        fields, rest = self._engage_args(ctx.args[2:])
        if not fields or rest:
            raise UsageError("Engage mode: pattern <regex>, mention or mention-sticky.")
        await self.executors.central.run(self.admin.update_wiring, ctx.actor, chat, agent, **fields)
        return (
            f"{agent.name} in {chat.channel_type}/{chat.platform_id} now engages on "
            f"{fields['engage_mode']}"
            + (f" {fields['engage_pattern']}" if fields.get("engage_pattern") else "")
            + "."
        )

    async def _policy(self, ctx: CommandContext) -> str:
        if len(ctx.args) != 2:
            raise UsageError("Name a chat and a policy.")
        chat = await self._chat(ctx, ctx.args[0])
        await self.executors.central.run(self.admin.set_policy, ctx.actor, chat, ctx.args[1])
        return f"Unknown senders in {chat.channel_type}/{chat.platform_id}: {ctx.args[1]}."

    async def _role_args(self, ctx: CommandContext) -> tuple[str, str, object]:
        if len(ctx.args) not in (2, 3):
            raise UsageError("Name a user and a role.")
        user = await self._user(ctx, ctx.args[0])
        agent = await self.agent(ctx.args[2]) if len(ctx.args) == 3 else None
        return user, ctx.args[1], agent

    async def _grant(self, ctx: CommandContext) -> str:
        user, role, agent = await self._role_args(ctx)
        await self.executors.central.run(self.admin.grant, ctx.actor, user, role, agent)  # type: ignore[arg-type]
        where = f" of {agent.name}" if agent is not None else ""  # type: ignore[attr-defined]
        return f"Granted {role}{where} to {user}."

    async def _revoke(self, ctx: CommandContext) -> str:
        user, role, agent = await self._role_args(ctx)
        await self.executors.central.run(self.admin.revoke, ctx.actor, user, role, agent)  # type: ignore[arg-type]
        where = f" of {agent.name}" if agent is not None else ""  # type: ignore[attr-defined]
        return f"Revoked {role}{where} from {user}."

    async def _members(self, ctx: CommandContext) -> str:
        if not ctx.args:
            raise UsageError("Name an agent.")
        agent = await self.agent(ctx.args[0])
        if len(ctx.args) == 1:
            if not ctx.actor.can_read(agent.id):
                raise PermissionDeniedError(
                    f"you do not administer {agent.name}",
                    user_id=ctx.actor.user_id,
                    action="members",
                )
            return (
                await self.executors.central.run(self.admin.members, ctx.actor, agent)
            ).as_text()
        if len(ctx.args) != 3 or ctx.args[1] not in ("add", "remove"):
            raise UsageError("Use add <user> or remove <user>.")
        user = await self._user(ctx, ctx.args[2])
        if ctx.args[1] == "add":
            await self.executors.central.run(self.admin.add_member, ctx.actor, agent, user)
            return f"{user} is now a member of {agent.name}."
        await self.executors.central.run(self.admin.remove_member, ctx.actor, agent, user)
        return f"{user} is no longer a member of {agent.name}."

    async def _destinations(self, ctx: CommandContext) -> str:
        if not ctx.args:
            raise UsageError("Name an agent.")
        agent = await self.agent(ctx.args[0])
        words = ctx.args[1:]
        if not words:
            return (
                await self.executors.central.run(self.admin.destinations, ctx.actor, agent)
            ).as_text()
        if words[0] == "remove" and len(words) == 2:
            await self.executors.central.run(
                self.admin.remove_destination, ctx.actor, agent, words[1]
            )
            return f"Removed destination {words[1]} of {agent.name}."
        if words[0] != "add" or len(words) != 4 or words[2] not in ("agent", "chat"):
            raise UsageError(
                "Use add <name> agent <agent>, add <name> chat <chat> or remove <name>."
            )
        name, kind, ref = words[1], words[2], words[3]
        target_agent = await self.agent(ref) if kind == "agent" else None
        target_chat = await self._chat(ctx, ref) if kind == "chat" else None
        local = await self.executors.central.run(
            self.admin.add_destination,
            ctx.actor,
            agent,
            name,
            target_agent=target_agent,
            target_chat=target_chat,
        )
        return f"{agent.name} can now send to {local} ({kind} {ref})."

    async def _mounts(self, ctx: CommandContext) -> str:
        if not ctx.args:
            raise UsageError("Name an agent.")
        agent = await self.agent(ctx.args[0])
        words = ctx.args[1:]
        if not words:
            return (await self.executors.central.run(self.admin.mounts, ctx.actor, agent)).as_text()
        if words[0] == "remove" and len(words) == 2:
            await self.executors.central.run(self.admin.remove_mount, ctx.actor, agent, words[1])
            return f"Removed the mount {words[1]} of {agent.name} (from its next start)."
        if words[0] != "add" or not 2 <= len(words) <= 4:
            raise UsageError("Use add <host path> [container path] [rw] or remove <path>.")
        rest = words[2:]
        read_write = bool(rest) and rest[-1] == "rw"
        if read_write:
            rest = rest[:-1]
        entry = await self.executors.central.run(
            self.admin.add_mount,
            ctx.actor,
            agent,
            words[1],
            container_path=rest[0] if rest else None,
            read_write=read_write,
        )
        mode = "read-only" if entry["readonly"] else "read-write"
        return (
            f"{agent.name} gets {entry['hostPath']} at /workspace/extra/{entry['containerPath']}"
            f" ({mode}) from its next start (/restart {agent.name})."
        )

    async def _restart(self, ctx: CommandContext) -> str:
        if not ctx.args:
            raise UsageError("Name an agent.")
        agent = await self.agent(ctx.args[0])
        note = " ".join(ctx.args[1:]) or None
        count = await self.executors.central.run(self.admin.restart_agent, ctx.actor, agent, note)
        if count == 0:
            return f"{agent.name} has no running session; it starts fresh on its next message."
        after = " and read your note first" if note else ""
        return f"Restarting {count} session(s) of {agent.name} after their turn{after}."

    async def _approve(self, ctx: CommandContext) -> str:
        if len(ctx.args) not in (1, 2):
            raise UsageError("Name a request id (see /pending).")
        approval = await self.executors.central.run(self.admin.store.approval, ctx.args[0])
        if approval is None:
            raise NotFoundError("request", ctx.args[0])
        options = options_of(approval)
        index = 1
        if len(ctx.args) == 2:
            if not ctx.args[1].isdigit() or not 1 <= int(ctx.args[1]) <= len(options):
                raise UsageError(f"Pick an option from 1 to {len(options)}.")
            index = int(ctx.args[1])
        return await self.approvals.answer(
            approval.id,
            options[index - 1]["value"],
            user_id=ctx.actor.user_id or "",
            membership=ctx.actor.membership,
        )

    async def _deny(self, ctx: CommandContext) -> str:
        if len(ctx.args) != 1:
            raise UsageError("Name a request id (see /pending).")
        approval = await self.executors.central.run(self.admin.store.approval, ctx.args[0])
        if approval is None:
            raise NotFoundError("request", ctx.args[0])
        value = REJECT if approval.kind == "channel" else DENY
        return await self.approvals.answer(
            approval.id, value, user_id=ctx.actor.user_id or "", membership=ctx.actor.membership
        )

    async def _tasks(self, ctx: CommandContext) -> str:
        words = ctx.args or ["list"]
        if words[0] == "list" and len(words) <= 2:
            agent = await self.agent(words[1]) if len(words) == 2 else None
            return (await self.executors.central.run(self.admin.tasks, ctx.actor, agent)).as_text()
        if words[0] in ("pause", "resume", "cancel") and len(words) == 2:
            changed = await self.executors.central.run(
                self.admin.control_task, ctx.actor, words[1], words[0]
            )
            verb = {"pause": "Paused", "resume": "Resumed", "cancel": "Cancelled"}[words[0]]
            return f"{verb} {words[1]} ({changed} row(s))."
        raise UsageError("Use list [agent], pause <id>, resume <id> or cancel <id>.")

    def _unavailable(self, name: str) -> Handler:
        async def handler(ctx: CommandContext) -> str:
            return f"{name} is not available in this build yet."

        return handler


__all__ = ["APPROVE", "ChatCommands", "CommandContext", "UsageError"]
