"""The ``anthropic`` provider: the Messages API (``AsyncAnthropic``) with a hand-written tool loop.

One turn: load the transcript, compact it when the last prompt came near the context
limit, append the batch as a user message (images and PDFs as native blocks), then call
the model until it stops asking for tools. Every stop reason is handled:

- ``tool_use``: run each tool, answer with one user message of ``tool_result`` blocks;
- ``pause_turn``: send the conversation back as it is (server tools continue);
- ``end_turn`` / ``stop_sequence``: the text is the turn's reply;
- ``max_tokens``: keep the text, ask the model to continue (a few times), never cut;
- ``refusal``: tell the user; the refused turn is not kept in the transcript;
- ``model_context_window_exceeded`` (or a "prompt is too long" 400): compact, retry once.

Retries of 408/409/429/5xx are the SDK's (``max_retries``); a final API error becomes an
error reply and the batch is acked ``failed``. The system prompt and the tools carry
``cache_control`` and are byte-stable across turns; the conversation uses the automatic
top-level breakpoint. The API key is the runner's proxy token: the host's credential proxy
behind ``model_socket`` / ``model_base_url`` swaps in the real key, so no secret enters
the sandbox.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
from anthropic import AsyncAnthropic

try:  # anthropic 2.x is built on httpx2; older SDKs on httpx
    import httpx2 as http
except ImportError:  # pragma: no cover - depends on the installed SDK
    import httpx as http  # type: ignore[no-redef]

from agent_runner.attachments import content_blocks
from agent_runner.context import RunnerContext
from agent_runner.mcp_hub import STATUS_KEY as MCP_STATUS_KEY
from agent_runner.mcp_hub import McpHub, mcp_hub
from agent_runner.pricing import cost_usd
from agent_runner.providers.base import Provider, TurnContext, TurnRequest, TurnResult, Usage
from agent_runner.tools.base import Tool, ToolEnv, ToolError, ToolOutput, ToolSet
from agent_runner.tools.nanoclaw import nanoclaw_tools
from agent_runner.tools.sandbox import BashTool, TextEditorTool, web_server_tools
from agent_runner.transcript import History, Transcript
from nanoclaw.contract.runner_config import CONTAINER_GLOBAL_DIR, ENV_GLOBAL_DIR, RunnerConfig

log = logging.getLogger("agent_runner.anthropic")

NO_TOKEN_API_KEY = "missing"  # without a proxy token; never a real key inside the sandbox
REQUEST_TIMEOUT_S = 600.0
CONNECT_TIMEOUT_S = 5.0
COMPACT_AT_FRACTION = 0.8  # compact once the last prompt used this share of the context limit
KEEP_TURNS_AFTER_COMPACTION = 2
COMPACT_INPUT_MAX_CHARS = 120_000  # what the summariser reads at most (newest kept)
SUMMARY_MAX_TOKENS = 2048
MAX_CONTINUATIONS = 3  # extra calls after ``max_tokens`` before the reply is sent as it is
STATE_CONTEXT_TOKENS = "anthropic.context_tokens"
REFUSAL_TEXT = "I can't help with that request."
CONTINUE_TEXT = "(Your reply was cut off at the output limit. Continue exactly where you stopped.)"
ITERATION_CAP_TEXT = (
    "(Tool step limit reached for this turn. Answer the user now with what you have;"
    " no more tools.)"
)
SUMMARY_SYSTEM = (
    "You summarise a conversation between a user and an assistant so the assistant can continue"
    " it. Keep facts, decisions, names, open tasks, promises, preferences and file paths."
    " Write plain prose, at most 400 words."
)
_TOO_LONG_MARKERS = ("prompt is too long", "context window", "too many tokens")


@dataclass
class _Tally:
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def add(self, usage: Any) -> int:
        """Add one response's usage; return the size of the prompt it reports."""
        self.input_tokens += int(usage.input_tokens or 0)
        self.output_tokens += int(usage.output_tokens or 0)
        read = int(getattr(usage, "cache_read_input_tokens", 0) or 0)
        write = int(getattr(usage, "cache_creation_input_tokens", 0) or 0)
        self.cache_read_tokens += read
        self.cache_write_tokens += write
        return int(usage.input_tokens or 0) + read + write

    def usage(self) -> Usage:
        return Usage(
            model=self.model,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cache_read_tokens=self.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens,
            cost_usd=cost_usd(
                self.model,
                input_tokens=self.input_tokens,
                output_tokens=self.output_tokens,
                cache_read_tokens=self.cache_read_tokens,
                cache_write_tokens=self.cache_write_tokens,
            ),
        )


class _ContextOverflowError(Exception):
    pass


class AnthropicProvider(Provider):
    name = "anthropic"

    def __init__(
        self,
        *,
        client: AsyncAnthropic,
        config: RunnerConfig,
        global_dir: Path,
        tools: Sequence[Tool] | None = None,
        mcp: McpHub | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self.global_dir = global_dir
        self.mcp = mcp
        self._tools = (
            list(tools) if tools is not None else [BashTool(), TextEditorTool(), *nanoclaw_tools()]
        )
        self.toolset = self._toolset()

    def _toolset(self) -> ToolSet:
        extra: list[Tool] = list(self.mcp.tools) if self.mcp is not None else []
        return ToolSet([*self._tools, *extra], web_server_tools() if self.config.web_tools else ())

    @classmethod
    def from_config(cls, config: RunnerConfig) -> AnthropicProvider:
        """The client speaks to the host's credential proxy: over its Unix socket when given
        one, else over TCP to ``model_base_url``; the API key is the per-runner proxy token."""
        timeout = http.Timeout(REQUEST_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
        http_client = None
        if config.model_socket:
            http_client = http.AsyncClient(
                transport=http.AsyncHTTPTransport(uds=config.model_socket), timeout=timeout
            )
        client = AsyncAnthropic(
            api_key=config.model_token or NO_TOKEN_API_KEY,
            base_url=config.model_base_url,
            max_retries=config.api_max_retries,
            timeout=timeout,
            http_client=http_client,
        )
        global_dir = Path(os.environ.get(ENV_GLOBAL_DIR, CONTAINER_GLOBAL_DIR))
        return cls(client=client, config=config, global_dir=global_dir, mcp=mcp_hub(config))

    async def aclose(self) -> None:
        if self.mcp is not None:
            await self.mcp.aclose()
        await self.client.close()

    async def _start_mcp(self, ctx: TurnContext) -> None:
        """Start the MCP servers before the first turn; a failed one is reported, not fatal."""
        if self.mcp is None or self.mcp.started:
            return
        await self.mcp.start()
        self.toolset = self._toolset()
        ctx.set_state(MCP_STATUS_KEY, json.dumps(self.mcp.status(), sort_keys=True))

    async def reset(self, ctx: TurnContext) -> None:
        self._transcript(ctx).clear()
        ctx.set_state(STATE_CONTEXT_TOKENS, None)

    # -- a turn ------------------------------------------------------------------------------
    async def run_turn(self, request: TurnRequest, ctx: TurnContext) -> TurnResult:
        if not isinstance(ctx, RunnerContext):
            raise TypeError("the anthropic provider needs the runner's context")
        if not self.config.model_base_url:
            message = "no model endpoint is configured (the host's credential proxy is not set up)"
            return TurnResult(text=f"Error: {message}.", error=message)
        await self._start_mcp(ctx)
        transcript = self._transcript(ctx)
        tally = _Tally(self.config.model)
        env = ToolEnv(ctx=ctx, config=self.config, global_dir=self.global_dir)
        history = History(summary=None, messages=[]) if request.fresh_context else transcript.load()
        if not request.fresh_context and self._near_limit(ctx):
            history = await self._compact(
                transcript, history, tally, keep=KEEP_TURNS_AFTER_COMPACTION
            )
        turn_id = request.batch[0].id if request.batch else f"turn-{uuid.uuid4().hex[:8]}"
        first: list[dict[str, Any]] = [{"type": "text", "text": request.prompt}]
        first.extend(content_blocks(request.batch, ctx.session_dir))
        turn: list[dict[str, Any]] = [{"role": "user", "content": first}]
        note = self.mcp.prompt_note() if self.mcp is not None else ""
        system_text = f"{request.system_prompt}\n\n{note}" if note else request.system_prompt
        system = [{"type": "text", "text": system_text, "cache_control": {"type": "ephemeral"}}]
        texts: list[str] = []
        steps = 0
        continuations = 0
        overflowed = False
        tool_choice: dict[str, Any] | None = None
        while True:
            try:
                response = await self._call(system, history, turn, tool_choice, ctx)
            except _ContextOverflowError:
                if overflowed or request.fresh_context:
                    return self._fail(
                        tally, "the conversation is too large for the model even after compaction"
                    )
                overflowed = True
                history = await self._compact(transcript, history, tally, keep=0)
                continue
            except anthropic.APIError as exc:
                log.warning("model call failed: %s", exc)
                return self._fail(tally, describe_api_error(exc))
            ctx.set_state(STATE_CONTEXT_TOKENS, str(tally.add(response.usage)))
            stop = response.stop_reason
            blocks = [block_param(b) for b in response.content]
            text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
            if stop == "refusal":
                log.info("the model refused the turn")
                return TurnResult(
                    text=(text.strip() + "\n\n" if text.strip() else "") + REFUSAL_TEXT,
                    usage=tally.usage(),
                )
            if stop == "model_context_window_exceeded":
                if overflowed or request.fresh_context:
                    return self._fail(tally, "the conversation is too large for the model")
                overflowed = True
                history = await self._compact(transcript, history, tally, keep=0)
                continue
            if stop == "max_tokens":
                blocks = [b for b in blocks if b.get("type") != "tool_use"]  # cut-off calls
            if blocks:
                turn.append({"role": "assistant", "content": blocks})
            if stop == "tool_use":
                steps += 1
                texts.clear()
                results = await self._run_tools(blocks, env)
                if steps >= self.config.max_tool_iterations:
                    results.append({"type": "text", "text": ITERATION_CAP_TEXT})
                    tool_choice = {"type": "none"}
                turn.append({"role": "user", "content": results})
                continue
            if stop == "pause_turn":
                steps += 1
                if steps < self.config.max_tool_iterations:
                    continue
                texts.append(text)
                break
            texts.append(text)
            if stop == "max_tokens" and continuations < MAX_CONTINUATIONS:
                continuations += 1
                turn.append({"role": "user", "content": [{"type": "text", "text": CONTINUE_TEXT}]})
                continue
            break
        if not request.fresh_context:
            transcript.append_turn(turn_id, _for_transcript(turn))
        return TurnResult(text="".join(texts), usage=tally.usage())

    # -- pieces ------------------------------------------------------------------------------
    def _transcript(self, ctx: TurnContext) -> Transcript:
        if not isinstance(ctx, RunnerContext):
            raise TypeError("the anthropic provider needs the runner's context")
        return Transcript(outbound_path=ctx.db.outbound_path)

    def _near_limit(self, ctx: TurnContext) -> bool:
        raw = ctx.get_state(STATE_CONTEXT_TOKENS)
        used = int(raw) if raw and raw.isdigit() else 0
        return used >= self.config.context_limit_tokens * COMPACT_AT_FRACTION

    def _fail(self, tally: _Tally, message: str) -> TurnResult:
        return TurnResult(text=f"Error: {message}", usage=tally.usage(), error=message)

    async def _call(
        self,
        system: list[dict[str, Any]],
        history: History,
        turn: list[dict[str, Any]],
        tool_choice: dict[str, Any] | None,
        ctx: TurnContext,
    ) -> anthropic.types.Message:
        messages = _with_summary(history.summary, history.api_messages() + turn)
        extra: dict[str, Any] = {}
        if tool_choice is not None:
            extra["tool_choice"] = tool_choice
        try:
            async with self.client.messages.stream(
                model=self.config.model,
                max_tokens=self.config.max_output_tokens,
                system=system,  # type: ignore[arg-type]
                messages=messages,  # type: ignore[arg-type]
                tools=self.toolset.definitions(),  # type: ignore[arg-type]
                cache_control={"type": "ephemeral"},
                **extra,
            ) as stream:
                async for _event in stream:
                    ctx.touch()
                return await stream.get_final_message()
        except anthropic.BadRequestError as exc:
            if any(marker in str(exc).lower() for marker in _TOO_LONG_MARKERS):
                raise _ContextOverflowError(str(exc)) from exc
            raise

    async def _run_tools(self, blocks: list[dict[str, Any]], env: ToolEnv) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        for block in blocks:
            if block.get("type") != "tool_use":
                continue
            output = await self._run_tool(str(block.get("name")), block.get("input") or {}, env)
            results.append(
                {
                    "type": "tool_result",
                    "tool_use_id": block["id"],
                    "content": output.content,
                    "is_error": output.is_error,
                }
            )
        return results

    async def _run_tool(self, name: str, tool_input: Any, env: ToolEnv) -> ToolOutput:
        tool = self.toolset.get(name)
        if tool is None:
            return ToolOutput(f"unknown tool {name!r}", is_error=True)
        if not isinstance(tool_input, dict):
            return ToolOutput("tool input must be an object", is_error=True)
        env.ctx.touch()
        try:
            return await tool.run(tool_input, env)
        except ToolError as exc:
            return ToolOutput(str(exc), is_error=True)
        except Exception as exc:  # a tool bug is the model's information, not the turn's end
            log.exception("tool %s raised", name)
            return ToolOutput(f"{name} failed: {type(exc).__name__}: {exc}", is_error=True)
        finally:
            env.ctx.touch()

    async def _compact(
        self, transcript: Transcript, history: History, tally: _Tally, *, keep: int
    ) -> History:
        """Summarise every turn but the last ``keep`` into one summary; never fails."""
        turns = history.turns()
        older = turns[: len(turns) - keep] if keep else turns
        if not older and history.summary is None:
            return history
        kept = turns[len(older) :]
        keep_from = kept[0][0].id if kept else None
        rendered = render_for_summary(history.summary, [m for t in older for m in t])
        summary = await self._summarise(rendered, tally)
        transcript.compact(summary, keep_from_id=keep_from)
        log.info("compacted %d turn(s) into a summary; %d kept", len(older), len(kept))
        return transcript.load()

    async def _summarise(self, rendered: str, tally: _Tally) -> str:
        try:
            response = await self.client.messages.create(
                model=self.config.model,
                max_tokens=SUMMARY_MAX_TOKENS,
                system=SUMMARY_SYSTEM,
                messages=[
                    {
                        "role": "user",
                        "content": f"<conversation>\n{rendered}\n</conversation>\n\n"
                        "Summarise this conversation.",
                    }
                ],
            )
        except anthropic.APIError as exc:
            log.warning("summary failed (%s); older turns are dropped instead", exc)
            return (
                "(Earlier messages were dropped: they could not be summarised.)\n"
                + rendered[-2000:]
            )
        tally.add(response.usage)
        text = "".join(b.text for b in response.content if b.type == "text").strip()
        return text or "(Earlier conversation: no summary was produced.)"


def block_param(block: Any) -> dict[str, Any]:
    """A response content block as a request block (what we send back and store)."""
    if block.type == "text":
        return {"type": "text", "text": block.text}
    if block.type == "tool_use":
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    data: dict[str, Any] = block.to_dict(mode="json", exclude_none=True)
    return data


def _with_summary(summary: str | None, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not summary or not messages:
        return messages
    head = messages[0]
    content = head["content"]
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    prefix = {"type": "text", "text": f"<conversation_summary>\n{summary}\n</conversation_summary>"}
    return [{"role": head["role"], "content": [prefix, *blocks]}, *messages[1:]]


def _for_transcript(turn: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Images and PDFs stay out of the stored transcript (the prompt names their paths)."""
    stored: list[dict[str, Any]] = []
    for message in turn:
        content = message["content"]
        if isinstance(content, list):
            content = [b for b in content if b.get("type") not in ("image", "document")]
        stored.append({"role": message["role"], "content": content})
    return stored


def render_for_summary(summary: str | None, messages: Sequence[Any]) -> str:
    """The older turns as plain text for the summariser, newest kept within the size budget."""
    lines: list[str] = []
    if summary:
        lines.append(f"[Earlier summary]\n{summary}")
    for message in messages:
        content = message.content
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        for block in blocks:
            kind = block.get("type")
            if kind == "text":
                lines.append(f"{message.role}: {block.get('text', '')}")
            elif kind == "tool_use":
                args = json.dumps(block.get("input"))[:500]
                lines.append(f"{message.role} called {block.get('name')}({args})")
            elif kind == "tool_result":
                body = block.get("content")
                text = body if isinstance(body, str) else json.dumps(body)
                lines.append(f"tool result: {text[:500]}")
    rendered = "\n".join(lines)
    return rendered[-COMPACT_INPUT_MAX_CHARS:]


def describe_api_error(exc: anthropic.APIError) -> str:
    if isinstance(exc, anthropic.RateLimitError):
        return "the model API is rate-limited (429); please try again in a moment"
    if isinstance(exc, anthropic.APITimeoutError):
        return "the model API timed out"
    if isinstance(exc, anthropic.APIConnectionError):
        return "the model API could not be reached"
    if isinstance(exc, anthropic.AuthenticationError):
        return "the model API rejected the credential (check the host's API key)"
    if isinstance(exc, anthropic.APIStatusError):
        return f"the model API failed with status {exc.status_code}"
    return f"the model API failed: {type(exc).__name__}"
