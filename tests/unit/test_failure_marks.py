"""Failure marks: a host notice standing in for a lost answer keeps its mark through the outbox
(restarts included) and reaches the terminal client as the reply frame's ``failure`` field."""

from __future__ import annotations

from pathlib import Path

from nanoclaw.channels.base import ChannelSetup, InboundEvent, OutboundPayload, RouteReceipt
from nanoclaw.channels.cli.adapter import CliAdapter
from nanoclaw.channels.cli.backlog import CliBacklog
from nanoclaw.channels.cli.client import send_once
from nanoclaw.db.central import CentralDB
from nanoclaw.delivery.notices import NoticeOutbox, retry_delay_s
from nanoclaw.settings import Settings
from tests.helpers import shared_executors
from tests.unit.test_notice_outbox import Clock


class Recorder:
    def __init__(self, down: bool) -> None:
        self.down = down
        self.failures: list[str | None] = []

    async def notify(
        self,
        channel_type: str | None,
        platform_id: str | None,
        thread_id: str | None,
        text: str,
        failure: str | None = None,
    ) -> bool:
        self.failures.append(failure)
        return not self.down


async def test_the_mark_survives_a_retry_by_the_next_host(
    settings: Settings, tmp_path: Path
) -> None:
    db = CentralDB(path=tmp_path / "central.db", migrations_root=settings.migrations_path)
    db.migrate()
    clock = Clock()
    first = NoticeOutbox(
        executors=shared_executors(), db=db, sender=Recorder(down=True), clock=clock
    )
    assert not await first.notify("cli", "local", None, "Sorry: gave up", failure="not_processed")
    clock.advance(retry_delay_s(1))
    channel = Recorder(down=False)
    assert (
        await NoticeOutbox(
            executors=shared_executors(), db=db, sender=channel, clock=clock
        ).retry_due()
        == 1
    )
    assert channel.failures == ["not_processed"]
    plain = Recorder(down=False)
    await NoticeOutbox(executors=shared_executors(), db=db, sender=plain, clock=clock).notify(
        "cli", "local", None, "/help …"
    )
    assert plain.failures == [None]  # an ordinary notice (a command's answer) carries no mark
    db.dispose()


async def test_the_terminal_frame_carries_the_mark(
    short_dir: Path, cli_backlog: CliBacklog
) -> None:
    adapter = CliAdapter(
        executors=shared_executors(), socket_path=short_dir / "cli.sock", backlog=cli_backlog
    )

    async def on_inbound(event: InboundEvent) -> RouteReceipt:
        mid = f"{event.message.id}:a"
        await adapter.deliver(
            event.platform_id,
            None,
            OutboundPayload("chat", {"text": "Sorry: I gave up", "failure": "not_processed"}),
        )
        await adapter.deliver(
            event.platform_id, None, OutboundPayload("chat", {"text": "Error: x", "error": "x"})
        )
        await adapter.deliver(event.platform_id, None, OutboundPayload("chat", {"text": "fine"}))
        await adapter.turn_done(frozenset({mid}))
        return RouteReceipt(delivered_to=1, waiting_ids=(mid,))

    await adapter.setup(ChannelSetup(on_inbound=on_inbound))
    try:
        exchange = await send_once(
            adapter.socket_path, chat="local", sender="al", text="hi", timeout_s=5
        )
    finally:
        await adapter.teardown()
    marks = [(r.get("failure"), r.get("failure_detail")) for r in exchange.replies]
    assert marks == [("not_processed", "Sorry: I gave up"), ("agent_error", "x"), (None, None)]
