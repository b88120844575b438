"""NanoClaw tools (upstream §5): act on the world through rows the host delivers or carries out.

Chat tools write ``messages_out`` rows now (mid-turn). Host actions write a ``system`` row;
the host's delivery loop carries it out and answers with an inbound ``system`` row
(``result-<row id>``), which the tool waits for briefly and consumes so the agent learns
the outcome in the same turn. ``ask_user_question`` blocks until an inbound
``question_response`` row arrives, or times out.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import shutil
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agent_runner.context import UnknownDestinationError
from agent_runner.db import OutboundMessage, new_out_id
from agent_runner.rows import InboundRow
from agent_runner.tools.base import Tool, ToolEnv, ToolError, ToolOutput
from agent_runner.tools.inputs import (
    AddDestinationInput,
    AddMcpServerInput,
    AddMountInput,
    AddReactionInput,
    AdminRequestInput,
    AskUserQuestionInput,
    CreateAgentInput,
    EditMessageInput,
    InstallPackagesInput,
    ListTasksInput,
    QuestionOption,
    RemoveDestinationInput,
    RestartAgentInput,
    ScheduleTaskInput,
    SendFileInput,
    SendMessageInput,
    SeriesInput,
    UnwireChatInput,
    UpdateTaskInput,
    WireChatInput,
)
from agent_runner.tools.schema import InputT, ModelTool
from nanoclaw.contract.actions import ActionStatus
from nanoclaw.contract.mcp import McpConfigError, validate_server
from nanoclaw.contract.timeutil import to_iso

ACTION_RESULT_WAIT_S = 15.0  # how long a host action's tool waits for the host's answer
RESPONSE_POLL_INTERVAL_S = 0.1
DEFAULT_QUESTION_TIMEOUT_S = 300.0
MAX_QUESTION_TIMEOUT_S = 3600.0
MAX_FILE_BYTES = 25 * 1024 * 1024
CRON_FIELD_RE = re.compile(r"^[\d*/,\-A-Za-z?LW#]+$")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]")


def _send(env: ToolEnv, to: str | None, content: dict[str, Any], out_id: str | None = None) -> int:
    try:
        message = env.ctx.address(to, content)
    except UnknownDestinationError as exc:
        raise ToolError(str(exc)) from exc
    if out_id is not None:
        message = dataclasses.replace(message, id=out_id)
    seq = env.ctx.db.send(message)
    env.ctx.touch()
    return seq


async def _wait_for(env: ToolEnv, match: Any, *, timeout_s: float, tool: str) -> InboundRow | None:
    """Poll ``inbound.db`` for a pending system row ``match`` accepts; consume it (ack it)."""
    env.ctx.declare_tool(tool, timeout_ms=int(timeout_s * 1000))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    try:
        while True:
            rows = [r for r in await asyncio.to_thread(env.ctx.db.pending_system) if match(r)]
            if rows:
                claimed = await asyncio.to_thread(env.ctx.db.claimed_ids)
                for row in rows:
                    if row.id not in claimed:
                        await asyncio.to_thread(env.ctx.db.finish, [row.id], [])
                        return row
            if loop.time() >= deadline:
                return None
            env.ctx.touch()
            await asyncio.sleep(RESPONSE_POLL_INTERVAL_S)
    finally:
        env.ctx.declare_tool(None)


async def request_and_wait(env: ToolEnv, action: str, payload: dict[str, Any]) -> ToolOutput:
    """Write a host action and wait (briefly) for the host's result row."""
    out_id = new_out_id()
    origin = env.ctx.origin
    env.ctx.db.send(
        OutboundMessage(
            kind="system",
            content={"action": action, **payload},
            channel_type=origin.channel_type if origin else None,
            platform_id=origin.platform_id if origin else None,
            thread_id=origin.thread_id if origin else None,
            in_reply_to=env.ctx.in_reply_to,
            id=out_id,
        )
    )
    env.ctx.touch()
    expected = f"result-{out_id}"
    row = await _wait_for(
        env, lambda r: r.id == expected, timeout_s=ACTION_RESULT_WAIT_S, tool=action
    )
    if row is None:
        return ToolOutput(
            f"{action} was requested; the host has not answered yet. Its result will arrive"
            " as a system message."
        )
    status = str(row.content.get("status") or ActionStatus.OK)
    text = str(row.content.get("text") or status)
    return ToolOutput(text, is_error=status == ActionStatus.ERROR)


class SendMessage(ModelTool[SendMessageInput]):
    name = "send_message"
    description = (
        "Send a chat message now, while you keep working (e.g. progress updates). Returns its id."
    )
    input_model = SendMessageInput

    async def call(self, args: SendMessageInput, env: ToolEnv) -> ToolOutput:
        seq = _send(env, args.to, {"text": args.text})
        return ToolOutput(f"Message sent (id: {seq}).")


def safe_file_name(raw: str) -> str:
    """A basename with only plain characters; never empty, never a dot name."""
    base = Path(raw.replace("\\", "/")).name
    cleaned = _UNSAFE_NAME.sub("_", base).strip(" .")
    return cleaned[:128] or "file"


class SendFile(ModelTool[SendFileInput]):
    name = "send_file"
    description = "Send a file from your workspace to a chat, with optional text."
    input_model = SendFileInput

    async def call(self, args: SendFileInput, env: ToolEnv) -> ToolOutput:
        raw = args.path
        source = Path(raw) if Path(raw).is_absolute() else env.group_dir / raw
        if not source.is_file():
            raise ToolError(f"{raw} is not a file")
        size = source.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ToolError(f"{raw} is {size} bytes; the limit is {MAX_FILE_BYTES}")
        name = safe_file_name(args.filename or source.name)
        out_id = new_out_id()
        folder = env.session_dir / "outbox" / out_id
        folder.mkdir(parents=True, exist_ok=False)
        await asyncio.to_thread(shutil.copyfile, source, folder / name)
        content = {"text": args.text or "", "files": [name]}
        try:
            seq = _send(env, args.to, content, out_id=out_id)
        except ToolError:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return ToolOutput(f"File {name} sent (id: {seq}).")


def _platform_target(env: ToolEnv, seq: int) -> tuple[dict[str, Any], str]:
    """Routing and platform id of a message the agent can see, by its seq."""
    if seq % 2 == 1:
        row = env.ctx.db.outbound_by_seq(seq)
        if row is None:
            raise ToolError(f"no message with id {seq}")
        platform_id = env.ctx.db.delivered_platform_id(row["id"])
        if platform_id is None:
            raise ToolError(f"message {seq} has not been delivered yet")
        return row, platform_id
    inbound = env.ctx.db.row_by_seq(seq)
    if inbound is None or inbound.kind != "chat" or inbound.channel_type in (None, "agent"):
        raise ToolError(f"no chat message with id {seq}")
    suffix = f":{env.config.agent_group_id}"
    platform_message = str(
        inbound.content.get("platform_message_id") or inbound.id.removesuffix(suffix)
    )
    routing = {
        "channel_type": inbound.channel_type,
        "platform_id": inbound.platform_id,
        "thread_id": inbound.thread_id,
    }
    return routing, platform_message


def _operation(env: ToolEnv, seq: int, content: dict[str, Any]) -> int:
    routing, platform_message = _platform_target(env, seq)
    message = OutboundMessage(
        kind="chat",
        content={**content, "message_id": platform_message},
        channel_type=routing["channel_type"],
        platform_id=routing["platform_id"],
        thread_id=routing["thread_id"],
        in_reply_to=env.ctx.in_reply_to,
    )
    result = env.ctx.db.send(message)
    env.ctx.touch()
    return result


class EditMessage(ModelTool[EditMessageInput]):
    name = "edit_message"
    description = "Replace the text of a message you sent earlier, by its id."
    input_model = EditMessageInput

    async def call(self, args: EditMessageInput, env: ToolEnv) -> ToolOutput:
        _operation(env, args.message_id, {"operation": "edit", "text": args.text})
        return ToolOutput(f"Message {args.message_id} edited.")


class AddReaction(ModelTool[AddReactionInput]):
    name = "add_reaction"
    description = "React to a message (yours or the user's) with an emoji, by its id."
    input_model = AddReactionInput

    async def call(self, args: AddReactionInput, env: ToolEnv) -> ToolOutput:
        seq, emoji = args.message_id, args.emoji
        _operation(env, seq, {"operation": "reaction", "emoji": emoji, "text": emoji})
        return ToolOutput(f"Reacted to {seq} with {emoji}.")


class AskUserQuestion(ModelTool[AskUserQuestionInput]):
    name = "ask_user_question"
    description = "Ask the user a multiple-choice question and wait for the answer (default 300 s)."
    input_model = AskUserQuestionInput

    async def call(self, args: AskUserQuestionInput, env: ToolEnv) -> ToolOutput:
        question = args.question
        title = args.title or "Question"
        options = [_option(o) for o in args.options]
        timeout = min(args.timeout_s or DEFAULT_QUESTION_TIMEOUT_S, MAX_QUESTION_TIMEOUT_S)
        question_id = f"q-{uuid.uuid4().hex[:12]}"
        numbered = "\n".join(f"{n}. {o['label']}" for n, o in enumerate(options, start=1))
        # The card contract of the channels (``nanoclaw.channels.cards``): camelCase ids.
        _send(
            env,
            None,
            {
                "type": "ask_question",
                "questionId": question_id,
                "title": title,
                "question": question,
                "options": options,
                "text": f"{title}\n\n{question}\n\n{numbered}",
            },
        )
        row = await _wait_for(
            env,
            lambda r: (
                r.content.get("type") == "question_response"
                and question_id in (r.content.get("questionId"), r.content.get("question_id"))
            ),
            timeout_s=timeout,
            tool=self.name,
        )
        if row is None:
            return ToolOutput(f"Question timed out after {timeout:g}s", is_error=True)
        answer = (
            row.content.get("selectedOption")
            or row.content.get("selected_option")
            or row.content.get("value")
            or row.text
        )
        return ToolOutput(f"The user answered: {answer}")


def _option(item: str | QuestionOption) -> dict[str, str]:
    if isinstance(item, str):
        return {"label": item, "value": item}
    return {"label": item.label, "value": item.value or item.label}


def parse_when(raw: str, tz_name: str) -> str:
    """ISO-8601 → stored UTC; a time without a zone is local to the user's time zone."""
    try:
        moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ToolError(
            f"'process_after' must be ISO-8601 (e.g. 2026-01-05T09:00): {raw!r}"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(tz_name))
    return to_iso(moment)


def check_cron(expr: str) -> str:
    """A light syntax check; the host validates fully (croniter) before inserting."""
    if expr.strip().startswith("@"):
        return expr.strip()  # a macro such as @daily
    fields = expr.split()
    if len(fields) != 5 or not all(CRON_FIELD_RE.match(f) for f in fields):
        raise ToolError(f"'recurrence' must be a 5-field cron expression: {expr!r}")
    return " ".join(fields)


class ScheduleTask(ModelTool[ScheduleTaskInput]):
    name = "schedule_task"
    host_action = "schedule_task"
    description = (
        "Schedule a task: at 'process_after' you receive 'prompt' as a task. 'recurrence' (cron,"
        " in the user's time zone) repeats it. A 'script' (bash, 30 s max) runs first in your"
        ' sandbox; its last output line must be {"wakeAgent": true|false, "data": ...}: false'
        " (or a failing script) skips the turn, true adds 'data' to the prompt."
    )
    input_model = ScheduleTaskInput

    async def call(self, args: ScheduleTaskInput, env: ToolEnv) -> ToolOutput:
        payload: dict[str, Any] = {
            "task_id": f"task-{uuid.uuid4().hex[:12]}",
            "prompt": args.prompt,
            "process_after": parse_when(args.process_after, env.config.timezone),
        }
        if args.recurrence:
            payload["recurrence"] = check_cron(args.recurrence)
        if args.script:
            payload["script"] = args.script
        return await request_and_wait(env, self.name, payload)


class ListTasks(ModelTool[ListTasksInput]):
    name = "list_tasks"
    description = "List your scheduled tasks (one line per series)."
    input_model = ListTasksInput

    async def call(self, args: ListTasksInput, env: ToolEnv) -> ToolOutput:
        tasks = await asyncio.to_thread(env.ctx.db.tasks)
        seen: set[str] = set()
        lines: list[str] = []
        for task in tasks:
            if task["series_id"] in seen:
                continue
            seen.add(task["series_id"])
            prompt = str(task["content"].get("prompt", ""))[:80]
            repeat = f", repeats {task['recurrence']}" if task["recurrence"] else ""
            when = task["process_after"]
            lines.append(f"{task['series_id']}: {task['status']}, next {when}{repeat} — {prompt}")
        return ToolOutput("\n".join(lines) if lines else "No scheduled tasks.")


class _SeriesAction(ModelTool[SeriesInput]):
    input_model = SeriesInput

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.host_action = cls.name

    async def call(self, args: SeriesInput, env: ToolEnv) -> ToolOutput:
        return await request_and_wait(env, self.name, {"task_id": args.task_id})


class CancelTask(_SeriesAction):
    name = "cancel_task"
    description = "Cancel a scheduled task and its future repetitions."


class PauseTask(_SeriesAction):
    name = "pause_task"
    description = "Pause a scheduled task (it will not run until resumed)."


class ResumeTask(_SeriesAction):
    name = "resume_task"
    description = "Resume a paused task."


class UpdateTask(ModelTool[UpdateTaskInput]):
    name = "update_task"
    host_action = "update_task"
    description = "Change a scheduled task. An empty string clears 'recurrence' or 'script'."
    input_model = UpdateTaskInput

    async def call(self, args: UpdateTaskInput, env: ToolEnv) -> ToolOutput:
        payload: dict[str, Any] = {"task_id": args.task_id}
        if args.prompt:
            payload["prompt"] = args.prompt
        if args.process_after:
            payload["process_after"] = parse_when(args.process_after, env.config.timezone)
        recurrence = args.recurrence
        if recurrence is not None:
            payload["recurrence"] = check_cron(recurrence) if recurrence.strip() else ""
        if args.script is not None:
            payload["script"] = args.script
        if len(payload) == 1:
            raise ToolError("nothing to change: give prompt, process_after, recurrence or script")
        return await request_and_wait(env, self.name, payload)


class CreateAgent(ModelTool[CreateAgentInput]):
    name = "create_agent"
    host_action = "create_agent"
    description = (
        'Create a new agent you can message with <message to="name">. Needs an admin\'s permission.'
    )
    input_model = CreateAgentInput

    async def call(self, args: CreateAgentInput, env: ToolEnv) -> ToolOutput:
        payload: dict[str, Any] = {"name": args.name}
        if args.instructions:
            payload["instructions"] = args.instructions
        return await request_and_wait(env, self.name, payload)


class InstallPackages(ModelTool[InstallPackagesInput]):
    name = "install_packages"
    host_action = "install_packages"
    description = (
        "Ask for packages in your sandbox: 'pip' (Python packages) and, with the Docker runtime,"
        " 'apt' (Debian packages). Needs an admin's approval; the host then downloads and"
        " installs them (your sandbox itself has no network) and tells you the outcome. They"
        " are available from your next start."
    )
    input_model = InstallPackagesInput

    async def call(self, args: InstallPackagesInput, env: ToolEnv) -> ToolOutput:
        # The names were checked by the input model (the host's payload model, which checks
        # again): plain names, 1 to 20 of them.
        pip, apt = list(args.pip or []), list(args.apt or [])
        payload: dict[str, Any] = {"pip": pip, "apt": apt}
        if args.reason:
            payload["reason"] = args.reason
        return await request_and_wait(env, self.name, payload)


class AddMcpServer(ModelTool[AddMcpServerInput]):
    name = "add_mcp_server"
    host_action = "add_mcp_server"
    description = (
        "Ask to add a stdio MCP server to yourself (its tools appear as mcp__<name>__<tool> from"
        " your next start). Needs an admin's approval. The server's program must already be in"
        " your sandbox (installed packages or files in your folder): the sandbox has no network."
        " Its env may not hold secrets."
    )
    input_model = AddMcpServerInput

    async def call(self, args: AddMcpServerInput, env: ToolEnv) -> ToolOutput:
        try:
            spec = validate_server(
                args.name, args.command, list(args.args or []), dict(args.env or {})
            )
        except McpConfigError as exc:
            raise ToolError(str(exc)) from exc
        payload: dict[str, Any] = {"name": spec.name, **spec.to_json()}
        if args.reason:
            payload["reason"] = args.reason
        return await request_and_wait(env, self.name, payload)


class _AdminTool(ModelTool[InputT]):
    """A gated host action on this agent's own group: runs at once for an admin, else a card.

    The payload is the input's given fields (``None`` means not given).
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.host_action = cls.name

    async def call(self, args: InputT, env: ToolEnv) -> ToolOutput:
        return await request_and_wait(env, self.name, args.model_dump(exclude_none=True))


class AddDestination(_AdminTool[AddDestinationInput]):
    name = "add_destination"
    description = (
        "Link yourself to another agent or a chat under a name you can use in"
        ' <message to="name">. Give exactly one of agent or chat. Needs an admin.'
    )
    input_model = AddDestinationInput


class RemoveDestination(_AdminTool[RemoveDestinationInput]):
    name = "remove_destination"
    description = "Remove one of your destinations by name. Needs an admin."
    input_model = RemoveDestinationInput


class WireChat(_AdminTool[WireChatInput]):
    name = "wire_chat"
    description = "Wire a chat to you, so you answer there. Needs an admin."
    input_model = WireChatInput


class UnwireChat(_AdminTool[UnwireChatInput]):
    name = "unwire_chat"
    description = "Stop answering in a chat (remove its wiring to you). Needs an admin."
    input_model = UnwireChatInput


class AddMount(_AdminTool[AddMountInput]):
    name = "add_mount"
    description = (
        "Ask for a host folder at /workspace/extra/<container_path>, checked against the"
        " operator's mount allowlist; it appears from your next start. Needs an admin."
    )
    input_model = AddMountInput


class RestartAgent(_AdminTool[RestartAgentInput]):
    name = "restart_agent"
    description = (
        "Restart yourself after this turn (e.g. to get a new mount); you then read 'note'"
        " first. Needs an admin."
    )
    input_model = RestartAgentInput


class AdminRequest(ModelTool[AdminRequestInput]):
    name = "admin_request"
    host_action = "admin_request"
    description = (
        "Admin operations within your admin scope (see docs/admin.md): reads such as"
        " agents.list, wirings.list, sessions.list; writes such as wire, members.add need an"
        " admin. Returns the result as text or JSON rows."
    )
    input_model = AdminRequestInput

    async def call(self, args: AdminRequestInput, env: ToolEnv) -> ToolOutput:
        return await request_and_wait(env, self.name, {"op": args.op, "args": args.args or {}})


def nanoclaw_tools() -> list[Tool]:
    return [
        SendMessage(),
        SendFile(),
        EditMessage(),
        AddReaction(),
        AskUserQuestion(),
        ScheduleTask(),
        ListTasks(),
        UpdateTask(),
        CancelTask(),
        PauseTask(),
        ResumeTask(),
        CreateAgent(),
        InstallPackages(),
        AddDestination(),
        RemoveDestination(),
        WireChat(),
        UnwireChat(),
        AddMount(),
        RestartAgent(),
        AdminRequest(),
        AddMcpServer(),
    ]
