"""Mock-only directives that exercise the channel features end to end (files, edits, reactions,
question cards) without a model: ``!file NAME TEXT``, ``!edit TEXT``, ``!react EMOJI`` and
``!ask QUESTION | OPTION | OPTION``. They write the same rows the real tools write.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from agent_runner.db import OutboundMessage
from agent_runner.providers.base import TurnContext, TurnResult
from agent_runner.rows import InboundRow

WAIT_S = 60.0
POLL_S = 0.05


def _new_id() -> str:
    return f"out-{uuid.uuid4().hex}"


async def run_directive(
    text: str, ctx: TurnContext, batch: tuple[InboundRow, ...]
) -> TurnResult | None:
    """Carry out a channel directive; None when ``text`` is not one."""
    word, _, rest = text.partition(" ")
    rctx: Any = ctx  # the RunnerContext: its db and address() are what the real tools use
    if word == "!file":
        name, _, body = rest.strip().partition(" ")
        row_id = _new_id()
        folder = ctx.session_dir / "outbox" / row_id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(body.encode())
        message = rctx.address(None, {"text": f"Here is {name}", "files": [name]})
        rctx.db.send(_with_id(message, row_id))
        return TurnResult(text="")
    if word == "!edit":
        row_id = _new_id()
        rctx.db.send(_with_id(rctx.address(None, {"text": "Working on it…"}), row_id))
        platform_id = await _wait(lambda: rctx.db.delivered_platform_id(row_id), ctx)
        if platform_id is None:
            return TurnResult(text="the draft was never delivered")
        rctx.db.send(
            rctx.address(
                None, {"operation": "edit", "messageId": platform_id, "text": rest.strip()}
            )
        )
        return TurnResult(text="")
    if word == "!react":
        trigger = next((r for r in reversed(batch) if r.trigger), batch[-1])
        platform_message_id = str(
            trigger.content.get("platform_message_id") or trigger.id.rsplit(":", 1)[0]
        )
        rctx.db.send(
            rctx.address(
                None,
                {"operation": "reaction", "messageId": platform_message_id, "emoji": rest.strip()},
            )
        )
        return TurnResult(text="")
    if word == "!ask":
        question, *options = [p.strip() for p in rest.split("|")]
        qid = f"q-{uuid.uuid4().hex[:12]}"
        rctx.db.send(
            rctx.address(
                None,
                {
                    "type": "ask_question",
                    "questionId": qid,
                    "title": "Question",
                    "question": question,
                    "options": options,
                },
            )
        )

        def answered() -> InboundRow | None:
            for row in rctx.db.pending_system():
                if row.content.get("questionId") == qid:
                    return row  # type: ignore[no-any-return]
            return None

        ctx.declare_tool("ask_user_question", timeout_ms=int(WAIT_S * 1000))
        try:
            row = await _wait(answered, ctx)
        finally:
            ctx.declare_tool(None)
        if row is None:
            return TurnResult(text=f"Question timed out after {WAIT_S:g}s")
        rctx.db.finish([row.id], [])
        return TurnResult(text=f"You chose: {row.content.get('selectedOption')}")
    return None


def _with_id(message: OutboundMessage, row_id: str) -> OutboundMessage:
    return OutboundMessage(
        kind=message.kind,
        content=message.content,
        channel_type=message.channel_type,
        platform_id=message.platform_id,
        thread_id=message.thread_id,
        in_reply_to=message.in_reply_to,
        deliver_after=message.deliver_after,
        id=row_id,
    )


async def _wait(probe: Any, ctx: TurnContext) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while loop.time() < deadline:
        ctx.touch()
        found = probe()
        if found is not None:
            return found
        await asyncio.sleep(POLL_S)
    return None
