"""Session writes that record each delivery record's ``linger`` flag, then write it."""

from __future__ import annotations

from typing import Any

from nanoclaw.contract.layout import SessionLayout
from nanoclaw.sessions.writes import SessionWrites


class RecordingWrites(SessionWrites):
    """``records``: (message_out_id, linger) per delivery record, in the order written."""

    records: list[tuple[str, bool]]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.records = []

    async def record_delivery(
        self,
        session_id: str,
        layout: SessionLayout,
        message_out_id: str,
        *,
        linger: bool = False,
        **outcome: Any,
    ) -> None:
        self.records.append((message_out_id, linger))
        await super().record_delivery(session_id, layout, message_out_id, linger=linger, **outcome)
