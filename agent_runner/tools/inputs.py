"""Every tool's input as a model: a NanoClaw tool's JSON schema is what the model API is given."""

# A tool that asks the host for something shares its limits with the host's payload model
# (``nanoclaw.contract.actions``): its input *is* that model, or is built from its field types.

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from agent_runner.tools.schema import ToolInput
from nanoclaw.contract.actions import (
    AddDestinationPayload,
    AddMcpServerPayload,
    AddMountPayload,
    AdminRequestPayload,
    CreateAgentPayload,
    InstallPackagesPayload,
    NonEmptyStr,
    RemoveDestinationPayload,
    RestartAgentPayload,
    SeriesPayload,
    TaskPrompt,
    TaskScript,
    UnwireChatPayload,
    WireChatPayload,
)

MAX_QUESTION_OPTIONS = 10

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
    prompt: Annotated[TaskPrompt, Field(description="What to do when the task runs.")]
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
        TaskScript | None,
        Field(description="Optional bash pre-check deciding whether the task wakes you."),
    ] = None


class ListTasksInput(ToolInput):
    pass


class SeriesInput(ToolInput, SeriesPayload):
    """cancel_task, pause_task and resume_task: one series (the payload as it is)."""


class UpdateTaskInput(ToolInput):
    task_id: Annotated[NonEmptyStr, Field(description="The task id (series).")]
    prompt: Annotated[TaskPrompt | None, Field(description="New prompt.")] = None
    process_after: Annotated[
        str | None, Field(description="New time (ISO-8601; no zone = user's local time).")
    ] = None
    recurrence: Annotated[
        str | None,
        Field(description="New cron expression or '@every <n><s|m|h|d>', or '' to stop repeating."),
    ] = None
    script: Annotated[TaskScript | None, Field(description="New script, or '' to remove it.")] = (
        None
    )


class CreateAgentInput(ToolInput, CreateAgentPayload):
    pass


class InstallPackagesInput(ToolInput, InstallPackagesPayload):
    pass


class AddMcpServerInput(ToolInput, AddMcpServerPayload):
    pass


class AddDestinationInput(ToolInput, AddDestinationPayload):
    pass


class RemoveDestinationInput(ToolInput, RemoveDestinationPayload):
    pass


class WireChatInput(ToolInput, WireChatPayload):
    pass


class UnwireChatInput(ToolInput, UnwireChatPayload):
    pass


class AddMountInput(ToolInput, AddMountPayload):
    pass


class RestartAgentInput(ToolInput, RestartAgentPayload):
    pass


class AdminRequestInput(ToolInput, AdminRequestPayload):
    pass


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
