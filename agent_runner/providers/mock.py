"""A deterministic provider for tests and key-free demos; every reply says it is the mock.

Directives (mock only, for tests and demos): a chat text starting with ``!sleep <s>``
holds the turn that long (``!hold-while <path>``: while that file exists),
``!crash`` ends the process with exit code 70 (``!crash-while <path>``:
only while that file exists), ``!to <name> <text>``
answers with a ``<message to="name">`` block, ``!internal`` wraps the reply in ``<internal>``, and
``!prompt`` answers with the exact prompt the formatter built (what a real model would read).
``!file``, ``!edit``, ``!react`` and ``!ask`` exercise the channels (``mock_channel.py``).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from agent_runner.providers.base import Provider, TurnContext, TurnRequest, TurnResult, Usage

CRASH_EXIT_CODE = 70


class MockProvider(Provider):
    name = "mock"

    def __init__(self, *, assistant_name: str) -> None:
        self.assistant_name = assistant_name

    async def run_turn(self, request: TurnRequest, ctx: TurnContext) -> TurnResult:
        texts = [row.text for row in request.batch if row.kind in ("chat", "task") and row.text]
        last = texts[-1].strip() if texts else ""
        directive = last.split(" ", 1)[1] if last.startswith("@") and " " in last else last
        if directive.startswith(("!file ", "!edit ", "!react ", "!ask ")):
            from agent_runner.providers.mock_channel import run_directive

            done = await run_directive(directive, ctx, request.batch)
            if done is not None:
                return done
        if last.startswith("!prompt"):
            return TurnResult(text=request.prompt)
        if last.startswith("!sleep"):
            seconds = float(last.split()[1]) if len(last.split()) > 1 else 1.0
            await asyncio.sleep(seconds)  # a turn that hangs: no heartbeat, no progress
        if last.startswith("!hold-while "):
            held = Path(last.split(maxsplit=1)[1])
            while await asyncio.to_thread(held.exists):  # a turn in progress, alive
                ctx.touch()
                await asyncio.sleep(0.02)
        if last.startswith("!crash-while "):
            fault = Path(last.split(maxsplit=1)[1])
            if await asyncio.to_thread(fault.exists):  # a fault the operator can repair
                os._exit(CRASH_EXIT_CODE)
        elif last.startswith("!crash"):
            os._exit(CRASH_EXIT_CODE)
        if last.startswith("!to "):
            _, name, *rest = last.split(maxsplit=2)
            return TurnResult(text=f'<message to="{name}">{" ".join(rest)}</message>')
        heard = " / ".join(texts) if texts else "(nothing)"
        reply = f"{self.assistant_name} (mock model, no API key configured) heard: {heard}"
        if last.startswith("!internal"):
            reply = f"<internal>{reply}</internal>"
        ctx.touch()
        usage = Usage(
            model="mock", input_tokens=len(request.prompt) // 4, output_tokens=len(reply) // 4
        )
        return TurnResult(text=reply, usage=usage)
