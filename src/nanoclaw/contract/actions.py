"""What a runner asks of the host: each ``system`` row's payload as one model both sides import."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

import pydantic
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    model_validator,
)
from pydantic_core import ErrorDetails

from nanoclaw.contract.mcp import validate_server
from nanoclaw.contract.packages import check_package_names
from nanoclaw.contract.timeutil import parse_iso, to_iso
from nanoclaw.errors import PayloadError

NOT_BLANK_PATTERN = r"\S"
MAX_PROMPT_CHARS = 20_000
MAX_SCRIPT_CHARS = 20_000
MAX_INSTRUCTIONS_CHARS = 20_000
MAX_AGENT_NAME_CHARS = 64
TASK_ID_PATTERN = r"^task-[A-Za-z0-9_-]{1,64}$"


class ActionName(StrEnum):
    """The ``action`` of a runner's ``system`` row."""

    SCHEDULE_TASK = "schedule_task"
    UPDATE_TASK = "update_task"
    CANCEL_TASK = "cancel_task"
    PAUSE_TASK = "pause_task"
    RESUME_TASK = "resume_task"
    CREATE_AGENT = "create_agent"
    INSTALL_PACKAGES = "install_packages"
    ADD_MCP_SERVER = "add_mcp_server"
    ADD_DESTINATION = "add_destination"
    REMOVE_DESTINATION = "remove_destination"
    WIRE_CHAT = "wire_chat"
    UNWIRE_CHAT = "unwire_chat"
    ADD_MOUNT = "add_mount"
    RESTART_AGENT = "restart_agent"
    ADMIN_REQUEST = "admin_request"
    TASK_SCRIPT = "task_script"
    NOTIFY_AGENT = "notify_agent"


class ActionStatus(StrEnum):
    """The ``status`` of the host's answer to an action (an inbound ``action_result`` row)."""

    OK = "ok"
    ERROR = "error"
    PENDING = "pending"


class ScriptOutcome(StrEnum):
    """How a task's pre-check script ended (``agent_runner/task_script.py``)."""

    WOKE = "woke"
    SKIPPED = "skipped"
    ERROR = "error"


# -- the fields both sides constrain alike ------------------------------------------------------
# A required text: at least one non-blank character.
NonEmptyStr = Annotated[str, StringConstraints(min_length=1, pattern=NOT_BLANK_PATTERN)]
# A name or reference: trimmed, then not blank.
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, pattern=NOT_BLANK_PATTERN)
]
TaskPrompt = Annotated[NonEmptyStr, Field(max_length=MAX_PROMPT_CHARS)]
TaskScript = Annotated[str, Field(max_length=MAX_SCRIPT_CHARS)]
AgentName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=1,
        max_length=MAX_AGENT_NAME_CHARS,
        pattern=NOT_BLANK_PATTERN,
    ),
]
AgentInstructions = Annotated[str, Field(max_length=MAX_INSTRUCTIONS_CHARS)]
EngageChoice = Literal["pattern", "mention", "mention-sticky"]  # routing.modes.EngageMode


def _utc_time(raw: str) -> str:
    try:
        return to_iso(parse_iso(raw))
    except ValueError:
        raise ValueError(f"not a time: {raw!r}") from None


# A moment the runner has resolved to UTC; stored as the contract's fixed-width ISO form.
UtcTime = Annotated[NonEmptyStr, AfterValidator(_utc_time)]


class Payload(BaseModel):
    """One action's payload: unknown fields are refused, types are not coerced ("3" is no int).

    ``None`` for an optional field means "not given".
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# -- task actions (``delivery/task_actions.py``) -----------------------------------------------
class ScheduleTaskPayload(Payload):
    task_id: Annotated[str, StringConstraints(pattern=TASK_ID_PATTERN)]
    prompt: TaskPrompt
    process_after: UtcTime
    recurrence: str | None = None  # checked by the host's cron parser
    script: TaskScript | None = None


class UpdateTaskPayload(Payload):
    task_id: Name
    prompt: TaskPrompt | None = None
    process_after: UtcTime | None = None
    recurrence: str | None = None  # "" stops repeating
    script: TaskScript | None = None  # "" removes it

    @model_validator(mode="after")
    def _changes_something(self) -> UpdateTaskPayload:
        if all(
            getattr(self, f) is None for f in ("prompt", "process_after", "recurrence", "script")
        ):
            raise ValueError("nothing to change: give prompt, process_after, recurrence or script")
        return self


class SeriesPayload(Payload):
    """cancel_task, pause_task and resume_task: one series."""

    task_id: Annotated[Name, Field(description="The task id (series) from list_tasks.")]


class TaskScriptPayload(Payload):
    """The runner's report of a task's pre-check script (never answered back)."""

    task_id: NonEmptyStr
    outcome: Annotated[ScriptOutcome, Strict(False)]  # its value, as JSON has it
    reason: str | None = None


class NotifyAgentPayload(Payload):
    """A note the runner wants back as the agent's next input (e.g. a reply it could not send)."""

    text: NonEmptyStr
    undelivered_text: str | None = None


# -- agents and extensions (``delivery/agent_actions.py``, ``delivery/extension_actions.py``) ----
class CreateAgentPayload(Payload):
    name: Annotated[AgentName, Field(description="The new agent's name.")]
    instructions: Annotated[
        AgentInstructions | None,
        Field(description="Its standing instructions (written to its CLAUDE.local.md)."),
    ] = None


class InstallPackagesPayload(Payload):
    pip: Annotated[list[str] | None, Field(description="pip package names")] = None
    apt: Annotated[list[str] | None, Field(description="apt package names")] = None
    reason: Annotated[str | None, Field(description="Why you need them.")] = None

    @model_validator(mode="after")
    def _plain_names(self) -> InstallPackagesPayload:
        check_package_names(self.pip or [], self.apt or [])  # a PackageNameError is a ValueError
        return self


class AddMcpServerPayload(Payload):
    name: Annotated[
        NonEmptyStr, Field(description="Server name: lowercase letters, digits, _ or -.")
    ]
    command: Annotated[NonEmptyStr, Field(description="The program to run, e.g. python.")]
    args: Annotated[list[str] | None, Field(description="Its arguments.")] = None
    env: Annotated[
        dict[str, str] | None, Field(description="Environment variables (no secrets).")
    ] = None
    reason: Annotated[str | None, Field(description="Why you need it.")] = None

    @model_validator(mode="after")
    def _valid_spec(self) -> AddMcpServerPayload:
        validate_server(self.name, self.command, self.args or [], self.env or {})  # ValueError
        return self


# -- the agent's own group (``admin/agent_actions.py``) -----------------------------------------
class AddDestinationPayload(Payload):
    name: Annotated[Name, Field(description="The destination name you will write.")]
    agent: Annotated[Name | None, Field(description="The other agent (name or id).")] = None
    chat: Annotated[
        Name | None, Field(description="A chat as <channel>/<id>, e.g. slack/C0123.")
    ] = None

    @model_validator(mode="after")
    def _one_target(self) -> AddDestinationPayload:
        if (self.agent is None) == (self.chat is None):
            raise ValueError("give exactly one of 'agent' or 'chat'")
        return self


class RemoveDestinationPayload(Payload):
    name: Annotated[Name, Field(description="The destination name.")]


class WireChatPayload(Payload):
    chat: Annotated[Name, Field(description="The chat as <channel>/<id>.")]
    engage: Annotated[
        EngageChoice | None, Field(description="pattern (default), mention or mention-sticky.")
    ] = None
    pattern: Annotated[
        NonEmptyStr | None,
        Field(description="The regex for engage=pattern (default '.': everything)."),
    ] = None


class UnwireChatPayload(Payload):
    chat: Annotated[Name, Field(description="The chat as <channel>/<id>.")]


class AddMountPayload(Payload):
    host_path: Annotated[Name, Field(description="Absolute host path (or ~/...).")]
    container_path: Annotated[
        Name | None, Field(description="Relative name under /workspace/extra.")
    ] = None
    read_write: Annotated[
        bool | None, Field(description="Writable (only if the allowlist root allows it).")
    ] = None


class RestartAgentPayload(Payload):
    note: Annotated[
        NonEmptyStr | None, Field(description="What to tell yourself after the restart.")
    ] = None


class AdminRequestPayload(Payload):
    op: Annotated[NonEmptyStr, Field(description="The operation, e.g. agents.list or members.add.")]
    args: Annotated[dict[str, Any] | None, Field(description="The operation's arguments.")] = None


PAYLOADS: dict[ActionName, type[Payload]] = {
    ActionName.SCHEDULE_TASK: ScheduleTaskPayload,
    ActionName.UPDATE_TASK: UpdateTaskPayload,
    ActionName.CANCEL_TASK: SeriesPayload,
    ActionName.PAUSE_TASK: SeriesPayload,
    ActionName.RESUME_TASK: SeriesPayload,
    ActionName.TASK_SCRIPT: TaskScriptPayload,
    ActionName.NOTIFY_AGENT: NotifyAgentPayload,
    ActionName.CREATE_AGENT: CreateAgentPayload,
    ActionName.INSTALL_PACKAGES: InstallPackagesPayload,
    ActionName.ADD_MCP_SERVER: AddMcpServerPayload,
    ActionName.ADD_DESTINATION: AddDestinationPayload,
    ActionName.REMOVE_DESTINATION: RemoveDestinationPayload,
    ActionName.WIRE_CHAT: WireChatPayload,
    ActionName.UNWIRE_CHAT: UnwireChatPayload,
    ActionName.ADD_MOUNT: AddMountPayload,
    ActionName.RESTART_AGENT: RestartAgentPayload,
    ActionName.ADMIN_REQUEST: AdminRequestPayload,
}

P = TypeVar("P", bound=Payload)


def request_content(action: ActionName, payload: Payload) -> dict[str, Any]:
    """A ``system`` row's content as the runner writes it: the action and the given fields."""
    return {"action": action.value, **payload.model_dump(mode="json", exclude_none=True)}


def parse_payload(model: type[P], content: Mapping[str, Any]) -> P:
    """The row's payload (its content less ``action``); a refusal names every bad field."""
    data = {k: v for k, v in content.items() if k != "action"}
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        errors = exc.errors(include_url=False)
        fields = tuple(f for f in (field_of(e) for e in errors) if f)
        problems = "; ".join(
            describe(e, model.model_fields, noun="a field of this action", plural="fields")
            for e in errors
        )
        raise PayloadError(problems, fields=fields) from None


def field_of(error: ErrorDetails, *, skip: Callable[[str | int], bool] = lambda _: False) -> str:
    """The dotted location of one error (the model's own checks have none)."""
    return ".".join(str(part) for part in error["loc"] if not skip(part))


def describe(
    error: ErrorDetails,
    known: Collection[str],
    *,
    noun: str,
    plural: str,
    skip: Callable[[str | int], bool] = lambda _: False,
) -> str:
    """One error as a sentence that names its field: ``'prompt' is required``."""
    field = field_of(error, skip=skip)
    kind = error["type"]
    if kind == "missing":
        return f"'{field}' is required"
    if kind == "extra_forbidden":
        return f"'{field}' is not {noun} (its {plural}: {', '.join(sorted(known)) or 'none'})"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"'{field}' must be an object"
    ctx = error.get("ctx") or {}
    if (kind == "string_pattern_mismatch" and ctx.get("pattern") == NOT_BLANK_PATTERN) or (
        kind == "string_too_short" and ctx.get("min_length") == 1
    ):
        return f"'{field}' must not be blank"
    message = error["msg"].removeprefix("Value error, ")
    return f"'{field}': {message}" if field else message
