"""Every tool's input as a model: a NanoClaw tool's JSON schema is what the model API is given."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from agent_runner.tools.schema import NonEmptyStr, ToolInput

MAX_QUESTION_OPTIONS = 10
MAX_AGENT_NAME_CHARS = 64
# The host's own limits on what these tools ask for (``delivery/task_actions.py``,
# ``delivery/agent_actions.py``; tests/unit/test_tool_inputs.py keeps them equal), shown in
# the schema so the model learns them before the host refuses.
MAX_PROMPT_CHARS = 20_000
MAX_SCRIPT_CHARS = 20_000
MAX_INSTRUCTIONS_CHARS = 20_000

To = Annotated[
    str | None, Field(description="Destination name; omit to answer where the message came from.")
]


class SendMessageInput(ToolInput):
    to: To = None
    text: Annotated[NonEmptyStr, Field(description="The message text.")]


class SendFileInput(ToolInput):
    to: To = None
    path: Annotated[
        NonEmptyStr,
        Field(description="Path of the file (relative paths start in your group folder)."),
    ]
    text: Annotated[str | None, Field(description="Optional message text.")] = None
    filename: Annotated[str | None, Field(description="Optional file name to show.")] = None


class EditMessageInput(ToolInput):
    message_id: Annotated[int, Field(description="The id of your earlier message.")]
    text: Annotated[NonEmptyStr, Field(description="The new text.")]


class AddReactionInput(ToolInput):
    message_id: Annotated[int, Field(description="The id of the message.")]
    emoji: Annotated[NonEmptyStr, Field(description="The emoji, e.g. 👍 or thumbsup.")]


class QuestionOption(ToolInput):
    label: NonEmptyStr
    value: str | None = None  # the label when not given


class AskUserQuestionInput(ToolInput):
    title: Annotated[str | None, Field(description="A short title.")] = None
    question: Annotated[NonEmptyStr, Field(description="The question.")]
    options: Annotated[
        list[NonEmptyStr | QuestionOption],
        Field(min_length=1, max_length=MAX_QUESTION_OPTIONS, description="The choices (1-10)."),
    ]
    timeout_s: Annotated[
        float | None,
        Field(gt=0, description="Seconds to wait for the answer (default 300, max 3600)."),
    ] = None


class ScheduleTaskInput(ToolInput):
    prompt: Annotated[
        NonEmptyStr,
        Field(max_length=MAX_PROMPT_CHARS, description="What to do when the task runs."),
    ]
    process_after: Annotated[
        NonEmptyStr,
        Field(description="ISO-8601 time; without a zone it is the user's local time."),
    ]
    recurrence: Annotated[
        str | None,
        Field(
            description="Optional 5-field cron expression, or '@every <n><s|m|h|d>' for an exact"
            " interval (at least 60 s) counted from 'process_after'."
        ),
    ] = None
    script: Annotated[
        str | None,
        Field(
            max_length=MAX_SCRIPT_CHARS,
            description="Optional bash pre-check deciding whether the task wakes you.",
        ),
    ] = None


class ListTasksInput(ToolInput):
    pass


class SeriesInput(ToolInput):
    """cancel_task, pause_task and resume_task: one series."""

    task_id: Annotated[NonEmptyStr, Field(description="The task id (series) from list_tasks.")]


class UpdateTaskInput(ToolInput):
    task_id: Annotated[NonEmptyStr, Field(description="The task id (series).")]
    prompt: Annotated[str | None, Field(max_length=MAX_PROMPT_CHARS, description="New prompt.")] = (
        None
    )
    process_after: Annotated[
        str | None, Field(description="New time (ISO-8601; no zone = user's local time).")
    ] = None
    recurrence: Annotated[
        str | None,
        Field(description="New cron expression or '@every <n><s|m|h|d>', or '' to stop repeating."),
    ] = None
    script: Annotated[
        str | None,
        Field(max_length=MAX_SCRIPT_CHARS, description="New script, or '' to remove it."),
    ] = None


class CreateAgentInput(ToolInput):
    name: Annotated[
        str,
        StringConstraints(
            strip_whitespace=True, min_length=1, max_length=MAX_AGENT_NAME_CHARS, pattern=r"\S"
        ),
        Field(description="The new agent's name."),
    ]
    instructions: Annotated[
        str | None,
        Field(
            max_length=MAX_INSTRUCTIONS_CHARS,
            description="Its standing instructions (written to its CLAUDE.local.md).",
        ),
    ] = None


class InstallPackagesInput(ToolInput):
    # The names themselves are checked by ``nanoclaw.contract.packages`` (the host checks again).
    pip: Annotated[list[str] | None, Field(description="pip package names")] = None
    apt: Annotated[list[str] | None, Field(description="apt package names")] = None
    reason: Annotated[str | None, Field(description="Why you need them.")] = None


class AddMcpServerInput(ToolInput):
    # The spec itself is checked by ``nanoclaw.contract.mcp.validate_server`` (on both sides).
    name: Annotated[
        NonEmptyStr, Field(description="Server name: lowercase letters, digits, _ or -.")
    ]
    command: Annotated[NonEmptyStr, Field(description="The program to run, e.g. python.")]
    args: Annotated[list[str] | None, Field(description="Its arguments.")] = None
    env: Annotated[
        dict[str, str] | None, Field(description="Environment variables (no secrets).")
    ] = None
    reason: Annotated[str | None, Field(description="Why you need it.")] = None


class AddDestinationInput(ToolInput):
    name: Annotated[NonEmptyStr, Field(description="The destination name you will write.")]
    agent: Annotated[NonEmptyStr | None, Field(description="The other agent (name or id).")] = None
    chat: Annotated[
        NonEmptyStr | None, Field(description="A chat as <channel>/<id>, e.g. slack/C0123.")
    ] = None

    @model_validator(mode="after")
    def _one_target(self) -> AddDestinationInput:
        if (self.agent is None) == (self.chat is None):
            raise ValueError("give exactly one of 'agent' or 'chat'")
        return self


class RemoveDestinationInput(ToolInput):
    name: Annotated[NonEmptyStr, Field(description="The destination name.")]


class WireChatInput(ToolInput):
    chat: Annotated[NonEmptyStr, Field(description="The chat as <channel>/<id>.")]
    engage: Annotated[
        Literal["pattern", "mention", "mention-sticky"] | None,
        Field(description="pattern (default), mention or mention-sticky."),
    ] = None
    pattern: Annotated[
        NonEmptyStr | None,
        Field(description="The regex for engage=pattern (default '.': everything)."),
    ] = None


class UnwireChatInput(ToolInput):
    chat: Annotated[NonEmptyStr, Field(description="The chat as <channel>/<id>.")]


class AddMountInput(ToolInput):
    host_path: Annotated[NonEmptyStr, Field(description="Absolute host path (or ~/...).")]
    container_path: Annotated[
        NonEmptyStr | None, Field(description="Relative name under /workspace/extra.")
    ] = None
    read_write: Annotated[
        bool | None, Field(description="Writable (only if the allowlist root allows it).")
    ] = None


class RestartAgentInput(ToolInput):
    note: Annotated[
        NonEmptyStr | None, Field(description="What to tell yourself after the restart.")
    ] = None


class AdminRequestInput(ToolInput):
    op: Annotated[NonEmptyStr, Field(description="The operation, e.g. agents.list or members.add.")]
    args: Annotated[dict[str, Any] | None, Field(description="The operation's arguments.")] = None


# -- the model's built-in tool types (their schema is Anthropic's; we send only type and name) --
class _BuiltinInput(ToolInput):
    # Fields a later revision of the built-in type adds are passed over, not refused: the
    # schema the model follows is the provider's, not one we publish.
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


class BashInput(_BuiltinInput):
    command: NonEmptyStr | None = None  # required unless restart
    restart: bool | None = None


class EditorInput(_BuiltinInput):
    command: Literal["view", "create", "str_replace", "insert"]
    path: NonEmptyStr
    file_text: str | None = None
    old_str: str | None = None
    new_str: str | None = None
    insert_line: int | None = None
    insert_text: str | None = None  # what some revisions call insert's new_str
    view_range: Annotated[list[int], Field(min_length=2, max_length=2)] | None = None
