"""``/usage [agent]``: tokens and cost per agent over the last 30 days, from the usage ledger."""

from __future__ import annotations

from datetime import date, timedelta

from nanoclaw.admin.commands import ChatCommands, CommandContext, UsageError
from nanoclaw.usage.ledger import UsageLedger

USAGE_WINDOW_DAYS = 30


def register_usage_command(commands: ChatCommands, ledger: UsageLedger) -> None:
    async def usage(ctx: CommandContext) -> str:
        if len(ctx.args) > 1:
            raise UsageError("Name at most one agent.")
        admin = commands.admin
        if ctx.args:
            groups = [await commands.agent(ctx.args[0])]
        else:
            groups = await commands.executors.central.run(admin.repo.agent_groups)
        ids = [g.id for g in groups if ctx.actor.can_read(g.id)]
        if ctx.args and not ids:
            return f"Permission denied: you do not administer {groups[0].name}."
        names = {g.id: g.name for g in groups}

        def totals() -> list[str]:
            ledger.ingest_all()
            since = date.fromisoformat(ledger.today()) - timedelta(days=USAGE_WINDOW_DAYS - 1)
            return [
                f"• {names.get(t.key, t.key)}: {t.turns} turns, {t.input_tokens:,} in, "
                f"{t.output_tokens:,} out, ${t.cost_usd:.4f}"
                for t in ledger.totals(by="group", since=since, agent_group_ids=ids)
            ]

        lines = await commands.executors.central.run(totals)
        header = f"Usage, last {USAGE_WINDOW_DAYS} days:"
        return "\n".join([header, *lines]) if lines else f"{header} none recorded."

    commands.register(
        "/usage", "/usage [agent]", "Token usage and cost per agent over the last 30 days.", usage
    )
