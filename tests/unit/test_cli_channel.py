"""The CLI channel adapter against its real client, with a scripted router behind it."""

from __future__ import annotations

from pathlib import Path

from nanoclaw.channels.base import ChannelSetup, InboundEvent, OutboundPayload, RouteReceipt
from nanoclaw.channels.cli.adapter import CliAdapter
from nanoclaw.channels.cli.backlog import CliBacklog
from nanoclaw.channels.cli.client import send_once
from tests.helpers import shared_executors, until


async def test_a_turn_that_finishes_before_the_client_knows_of_it_still_ends_the_wait(
    short_dir: Path, cli_backlog: CliBacklog
) -> None:
    adapter = CliAdapter(
        executors=shared_executors(), socket_path=short_dir / "cli.sock", backlog=cli_backlog
    )

    async def on_inbound(event: InboundEvent) -> RouteReceipt:
        ids = (f"{event.message.id}:a", f"{event.message.id}:b")
        # Agent "a" answers and finishes while the router is still waking agent "b".
        await adapter.deliver(event.platform_id, None, OutboundPayload("chat", {"text": "from a"}))
        await adapter.turn_done(frozenset({ids[0]}))
        return RouteReceipt(delivered_to=2, waiting_ids=ids)

    await adapter.setup(ChannelSetup(on_inbound=on_inbound))
    try:
        import asyncio

        def waiting() -> set[str]:
            return {m for c in adapter._clients for m in c.waiting}

        async def finish_b_later() -> None:
            # Once the client waits for b's turn (a's ended before the receipt was known).
            await until(lambda: any(m.endswith(":b") for m in waiting()), within_s=5)
            await adapter.deliver("local", None, OutboundPayload("chat", {"text": "from b"}))
            # Only b's turn ends here: had a's early end been lost, the client would wait on.
            await adapter.turn_done(frozenset(m for m in waiting() if m.endswith(":b")))

        task = asyncio.create_task(finish_b_later())
        exchange = await send_once(
            adapter.socket_path, chat="local", sender="al", text="hi", timeout_s=5
        )
        await task
    finally:
        await adapter.teardown()
    assert [r["text"] for r in exchange.replies] == ["from a", "from b"]
