"""Builds the permission layer of a host: approvals, chat commands and the action gate."""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nanoclaw.admin.commands import ChatCommands
from nanoclaw.admin.service import AdminService, create_agent_files
from nanoclaw.admin.store import AdminStore
from nanoclaw.admin.usage_chat import register_usage_command
from nanoclaw.db.models import AgentGroup
from nanoclaw.permissions.agent_actions import ActionGate
from nanoclaw.permissions.approvals import ApprovalService
from nanoclaw.usage.ledger import UsageLedger

if TYPE_CHECKING:
    from nanoclaw.host import Host
    from nanoclaw.routing.router import Router

log = logging.getLogger("nanoclaw.permissions")

# Optional chat commands provided by other modules: (module, function name). Each function
# is called as ``register_chat_commands(commands, host)`` when the module exists.
OPTIONAL_COMMAND_PROVIDERS = (("nanoclaw.admin.usage", "register_chat_commands"),)


@dataclass
class Permissions:
    store: AdminStore
    admin: AdminService
    approvals: ApprovalService
    commands: ChatCommands
    gate: ActionGate

    def bind(self, host: Host, router: Router) -> None:
        """Connect what needs the router or the host's card dispatcher."""
        self.approvals.bind(route=router.route)
        card_actions: Any = getattr(host, "card_actions", None)
        if card_actions is not None:
            card_actions.add(self.approvals.on_action, first=True)
        for module_name, attr in OPTIONAL_COMMAND_PROVIDERS:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
            register = getattr(module, attr, None)
            if register is not None:
                try:
                    register(self.commands, host)
                except Exception:
                    log.exception("chat commands of %s failed to register", module_name)


def build_permissions(host: Host) -> Permissions:
    store = AdminStore(host.db)
    groups_path = host.settings.groups_path

    def create_agent(name: str) -> AgentGroup:
        return create_agent_files(host.repo, groups_path, name)

    admin = AdminService(
        repo=host.repo, store=store, groups_path=groups_path, sessions=host.sessions
    )
    approvals = ApprovalService(
        repo=host.repo,
        store=store,
        channels=host.channels,
        create_agent=create_agent,
        sessions=host.sessions,
        notices=host.notices,
    )
    commands = ChatCommands(admin=admin, approvals=approvals, reply=host.replier.reply)
    gate = ActionGate(
        repo=host.repo,
        store=store,
        admin=admin,
        approvals=approvals,
        sessions=host.sessions,
        reader=host.reader,
        actions=host.actions,
        write_to_agent=host.delivery.write_to_agent,
        origins=host.delivery.origins,
    )
    gate.install()
    ledger = UsageLedger(settings=host.settings, repo=host.repo, sessions=host.sessions)
    register_usage_command(commands, ledger)
    return Permissions(store, admin, approvals, commands, gate)
