"""Builds the permission layer of a host: approvals, chat commands and the action gate."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from nanoclaw.admin.agent_actions import AdminActions
from nanoclaw.admin.commands import ChatCommands, Reply
from nanoclaw.admin.extensions import Extensions
from nanoclaw.admin.extensions_chat import register_extension_commands
from nanoclaw.admin.service import AdminService, create_agent_files
from nanoclaw.admin.store import AdminStore
from nanoclaw.admin.usage_chat import register_usage_command
from nanoclaw.channels.card_actions import CardActions
from nanoclaw.channels.registry import ChannelRegistry
from nanoclaw.db.central import CentralDB
from nanoclaw.db.models import AgentGroup, PendingApproval
from nanoclaw.db.repository import Repository
from nanoclaw.delivery.actions import SystemActions
from nanoclaw.delivery.notices import Notifier
from nanoclaw.delivery.origin import OriginLedger
from nanoclaw.executors import Executors
from nanoclaw.permissions.agent_actions import ActionGate, WriteToAgent
from nanoclaw.permissions.approvals import ApprovalService, RouteFn
from nanoclaw.runtime.liveness import LivenessOf
from nanoclaw.runtime.mounts import MountPolicy
from nanoclaw.sessions.outbound_reader import SessionReader
from nanoclaw.sessions.service import SessionService
from nanoclaw.usage.ledger import UsageLedger

log = logging.getLogger("nanoclaw.permissions")


@dataclass(frozen=True)
class Permissions:
    store: AdminStore
    admin: AdminService
    approvals: ApprovalService
    commands: ChatCommands
    gate: ActionGate


def build_permissions(
    *,
    executors: Executors,
    db: CentralDB,
    repo: Repository,
    groups_path: Path,
    sessions: SessionService,
    reader: SessionReader,
    channels: ChannelRegistry,
    notices: Notifier,
    reply: Reply,
    actions: SystemActions,
    card_actions: CardActions,
    ledger: UsageLedger,
    write_to_agent: WriteToAgent,
    origins: OriginLedger,
    route: RouteFn,
    mount_policy: MountPolicy | None = None,
    liveness: LivenessOf | None = None,
) -> Permissions:
    """Approvals (first in line for card clicks), admin chat commands and the action gate."""
    store = AdminStore(db)

    def create_agent(name: str) -> AgentGroup:
        return create_agent_files(repo, groups_path, name)

    admin = AdminService(
        repo=repo,
        store=store,
        groups_path=groups_path,
        sessions=sessions,
        mount_policy=mount_policy,
        liveness=liveness,
    )

    # The approval service and the gate reach each other: an approval card for an agent action
    # is answered by the gate, which opens such cards through the approval service. This
    # closure is that one forward reference; ``gate`` is bound below, before any card exists.
    async def action_decided(approval: PendingApproval, approved: bool | None, by: str) -> str:
        return await gate.decided(approval, approved, by)

    approvals = ApprovalService(
        executors=executors,
        repo=repo,
        store=store,
        channels=channels,
        create_agent=create_agent,
        route=route,
        action_decider=action_decided,
        sessions=sessions,
        notices=notices,
    )
    card_actions.add(approvals.on_action, first=True)
    commands = ChatCommands(executors=executors, admin=admin, approvals=approvals, reply=reply)
    gate = ActionGate(
        executors=executors,
        repo=repo,
        store=store,
        admin=admin,
        approvals=approvals,
        sessions=sessions,
        reader=reader,
        actions=actions,
        write_to_agent=write_to_agent,
        origins=origins,
    )
    gate.install()
    AdminActions(executors=executors, admin=admin, actor_of=gate.acting_actor).install(actions)
    register_usage_command(commands, ledger)
    register_extension_commands(commands, Extensions(repo=repo, groups_path=groups_path))
    return Permissions(store, admin, approvals, commands, gate)
