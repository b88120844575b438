"""Tool inputs are models: each schema is generated from its model, keeps every constraint the
hand-written schemas had, agrees with the model on what it accepts, and a refusal names the field."""

from __future__ import annotations

import json
from typing import Any, get_args

import jsonschema
import pytest
from agent_runner.tools.base import ToolError
from agent_runner.tools.inputs import BashInput, EditorInput, WireChatInput
from agent_runner.tools.nanoclaw import nanoclaw_tools
from agent_runner.tools.schema import ModelTool, parse_input, tool_schema
from pydantic import BaseModel

from nanoclaw.contract import actions
from nanoclaw.routing.modes import EngageMode
from tests.conftest import REPO_ROOT

BEFORE = json.loads(
    (REPO_ROOT / "tests" / "fixtures" / "tools" / "hand_written_definitions.json").read_text()
)["tools"]
TOOLS: dict[str, ModelTool[Any]] = {t.name: t for t in nanoclaw_tools() if isinstance(t, ModelTool)}

# (tool, input, accepted). Each refused input breaks one rule, old or new.
CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("send_message", {"text": "hi"}, True),
    ("send_message", {"text": "hi", "to": "ops"}, True),
    ("send_message", {}, False),
    ("send_message", {"text": ""}, False),
    ("send_message", {"text": "  \n"}, False),
    ("send_message", {"text": 3}, False),
    ("send_message", {"text": "hi", "cc": "bob"}, False),
    ("send_file", {"path": "a.txt", "filename": "b.txt", "text": ""}, True),
    ("send_file", {"path": " "}, False),
    ("edit_message", {"message_id": 3, "text": "new"}, True),
    ("edit_message", {"message_id": "3", "text": "new"}, False),
    ("edit_message", {"message_id": True, "text": "new"}, False),
    ("add_reaction", {"message_id": 4, "emoji": "👍"}, True),
    ("add_reaction", {"message_id": 4}, False),
    ("ask_user_question", {"question": "Tea?", "options": ["yes", "no"]}, True),
    (
        "ask_user_question",
        {"question": "Tea?", "options": [{"label": "Yes"}, {"label": "No", "value": "n"}]},
        True,
    ),
    ("ask_user_question", {"question": "Tea?", "options": ["y"], "timeout_s": 5}, True),
    ("ask_user_question", {"question": "Tea?", "options": ["y"], "timeout_s": 0.5}, True),
    ("ask_user_question", {"question": "Tea?", "options": []}, False),
    ("ask_user_question", {"question": "Tea?", "options": [str(n) for n in range(11)]}, False),
    ("ask_user_question", {"question": "Tea?", "options": [""]}, False),
    ("ask_user_question", {"question": "Tea?", "options": [{"value": "v"}]}, False),
    ("ask_user_question", {"question": "Tea?", "options": [{"label": "a", "x": 1}]}, False),
    ("ask_user_question", {"question": "Tea?", "options": ["y"], "timeout_s": 0}, False),
    ("ask_user_question", {"question": "Tea?", "options": ["y"], "timeout_s": "9"}, False),
    ("schedule_task", {"prompt": "p", "process_after": "2026-01-05T09:00"}, True),
    ("schedule_task", {"prompt": "p"}, False),
    ("schedule_task", {"prompt": "p" * 20_001, "process_after": "2026-01-05T09:00"}, False),
    ("update_task", {"task_id": "task-1", "script": "s" * 20_001}, False),
    ("create_agent", {"name": "R", "instructions": "i" * 20_001}, False),
    ("list_tasks", {}, True),
    ("list_tasks", {"all": True}, False),
    ("update_task", {"task_id": "task-1", "recurrence": ""}, True),
    ("update_task", {"prompt": "p"}, False),
    ("cancel_task", {"task_id": "task-1"}, True),
    ("pause_task", {"task_id": ""}, False),
    ("resume_task", {}, False),
    ("create_agent", {"name": "R" * 64}, True),
    ("create_agent", {"name": "R" * 65}, False),
    ("create_agent", {"name": "   "}, False),
    ("install_packages", {"pip": ["httpx"], "apt": ["jq"], "reason": "x"}, True),
    ("install_packages", {"pip": "httpx"}, False),
    ("install_packages", {"pip": [1]}, False),
    ("install_packages", {"pip": ["httpx"], "apt": ["jq"]}, True),
    ("add_mcp_server", {"name": "s", "command": "python", "args": ["-m", "s"]}, True),
    ("add_mcp_server", {"name": "s", "command": "python", "env": {"A": 1}}, False),
    ("add_mcp_server", {"name": "s"}, False),
    ("add_destination", {"name": "ops", "chat": "slack/C1"}, True),
    ("remove_destination", {"name": "ops"}, True),
    ("remove_destination", {"name": ""}, False),
    ("wire_chat", {"chat": "slack/C1", "engage": "mention"}, True),
    ("wire_chat", {"chat": "slack/C1", "engage": "sometimes"}, False),
    ("unwire_chat", {"chat": "slack/C1"}, True),
    ("add_mount", {"host_path": "~/data", "read_write": False}, True),
    ("add_mount", {"host_path": "~/data", "read_write": "yes"}, False),
    ("restart_agent", {}, True),
    ("restart_agent", {"note": 5}, False),
    ("admin_request", {"op": "agents.list"}, True),
    ("admin_request", {"op": "members.add", "args": {"user": "u"}}, True),
    ("admin_request", {"op": "members.add", "args": ["u"]}, False),
]
# Where the two differ on purpose: the model also refuses a whole float for an integer (JSON
# Schema's "integer" allows 3.0) and checks rules the schema does not express (one target of
# two, package names, an MCP server's spec).
STRICTER_THAN_SCHEMA: list[tuple[str, dict[str, Any]]] = [
    ("edit_message", {"message_id": 3.0, "text": "new"}),
    ("add_destination", {"name": "ops"}),
    ("add_destination", {"name": "ops", "agent": "a", "chat": "slack/C1"}),
    ("install_packages", {}),  # 1 to 20 plain names (``nanoclaw.contract.packages``)
    ("install_packages", {"apt": ["jq; rm -rf /"]}),
    ("add_mcp_server", {"name": "Bad Name", "command": "python"}),  # ``contract.mcp``
]
# ... and takes null as "not given", which the schema does not offer.
NULL_AS_ABSENT: list[tuple[str, dict[str, Any]]] = [
    ("send_message", {"text": "hi", "to": None}),
    ("ask_user_question", {"question": "Tea?", "options": ["y"], "timeout_s": None}),
    ("install_packages", {"pip": None, "apt": ["jq"]}),
]


def test_every_nanoclaw_tool_takes_a_model_and_its_schema_is_generated_from_it() -> None:
    tools = nanoclaw_tools()
    assert [t.name for t in tools if not isinstance(t, ModelTool)] == []
    for tool in TOOLS.values():
        definition = tool.definition()
        assert definition["input_schema"] == tool_schema(tool.input_model), tool.name
        assert set(definition) == {"name", "description", "input_schema"}


def test_the_schemas_are_plain_json_schema_objects_without_refs_or_titles() -> None:
    for tool in TOOLS.values():
        schema = tool.definition()["input_schema"]
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        text = json.dumps(schema)
        assert "$ref" not in text and "$defs" not in text, tool.name
        assert '"title": "' not in text, tool.name  # keyword titles; a *property* may be "title"


def test_the_generated_schemas_keep_every_hand_written_field_type_and_description() -> None:
    assert sorted(d["name"] for d in BEFORE) == sorted(TOOLS)
    for before in BEFORE:
        tool = TOOLS[before["name"]]
        assert tool.description == before["description"], tool.name
        old, new = before["input_schema"], tool.definition()["input_schema"]
        assert sorted(new.get("required", [])) == sorted(old["required"]), tool.name
        assert list(new["properties"]) == list(old["properties"]), tool.name
        for field, spec in old["properties"].items():
            _assert_kept(spec, new["properties"][field], f"{tool.name}.{field}")


def _assert_kept(old: Any, new: Any, where: str) -> None:
    """Every keyword of the old schema is in the new one with the same value (nested too)."""
    if not isinstance(old, dict):
        assert new == old, where
        return
    for key, value in old.items():
        assert key in new, f"{where}: {key} lost"
        if isinstance(value, list) and key == "anyOf":
            for index, branch in enumerate(value):
                _assert_kept(branch, new[key][index], f"{where}.{key}[{index}]")
        elif key == "properties":
            for name, spec in value.items():
                _assert_kept(spec, new[key][name], f"{where}.{name}")
        elif isinstance(value, dict):
            _assert_kept(value, new[key], f"{where}.{key}")
        else:
            assert new[key] == value, f"{where}.{key}"


def test_the_old_limits_are_in_the_schemas_the_model_reads() -> None:
    schema = {name: tool.definition()["input_schema"] for name, tool in TOOLS.items()}
    options = schema["ask_user_question"]["properties"]["options"]
    assert (options["minItems"], options["maxItems"]) == (1, 10)
    assert schema["ask_user_question"]["properties"]["timeout_s"]["exclusiveMinimum"] == 0
    assert schema["create_agent"]["properties"]["name"]["maxLength"] == 64
    assert schema["send_message"]["properties"]["text"]["minLength"] == 1
    assert schema["edit_message"]["properties"]["message_id"]["type"] == "integer"


def _verdicts(tool: str, tool_input: dict[str, Any]) -> tuple[bool, bool]:
    model = TOOLS[tool].input_model
    schema_ok = jsonschema.Draft202012Validator(tool_schema(model)).is_valid(tool_input)
    try:
        parse_input(model, tool_input, tool=tool)
    except ToolError:
        return False, schema_ok
    return True, schema_ok


@pytest.mark.parametrize(("tool", "tool_input", "accepted"), CASES)
def test_the_model_and_its_schema_agree(
    tool: str, tool_input: dict[str, Any], accepted: bool
) -> None:
    assert _verdicts(tool, tool_input) == (accepted, accepted)


@pytest.mark.parametrize(("tool", "tool_input"), STRICTER_THAN_SCHEMA)
def test_the_model_is_stricter_where_the_schema_cannot_say(
    tool: str, tool_input: dict[str, Any]
) -> None:
    assert _verdicts(tool, tool_input) == (False, True)


@pytest.mark.parametrize(("tool", "tool_input"), NULL_AS_ABSENT)
def test_null_is_taken_as_not_given(tool: str, tool_input: dict[str, Any]) -> None:
    assert _verdicts(tool, tool_input) == (True, False)


def test_add_destination_says_it_needs_exactly_one_target() -> None:
    with pytest.raises(ToolError, match=r"^invalid input for t: give exactly one of 'agent' or"):
        parse_input(TOOLS["add_destination"].input_model, {"name": "ops"}, tool="t")


def test_a_refusal_names_each_bad_field() -> None:
    model = TOOLS["edit_message"].input_model
    with pytest.raises(ToolError) as caught:
        parse_input(model, {"message_id": "7", "txt": "x"}, tool="edit_message")
    text = str(caught.value)
    assert text.startswith("invalid input for edit_message: ")
    assert "'message_id': Input should be a valid integer" in text
    assert "'text' is required" in text
    assert "'txt' is not an input of this tool (its inputs: message_id, text)" in text
    with pytest.raises(ToolError, match=r"'text' must not be blank"):
        parse_input(TOOLS["send_message"].input_model, {"text": " "}, tool="send_message")
    with pytest.raises(ToolError, match=r"'name': String should have at most 64 characters"):
        parse_input(TOOLS["create_agent"].input_model, {"name": "x" * 65}, tool="create_agent")
    # A choice that fits neither form: the location names the item, not pydantic's union labels.
    with pytest.raises(ToolError) as caught:
        bad = {"question": "q", "options": ["ok", {"value": "v"}]}
        parse_input(TOOLS["ask_user_question"].input_model, bad, tool="ask")
    assert str(caught.value) == (
        "invalid input for ask: 'options.1': Input should be a valid string;"
        " 'options.1.label' is required"
    )


def test_create_agent_strips_the_name_before_its_limit() -> None:
    model = TOOLS["create_agent"].input_model
    parsed = parse_input(model, {"name": f"  {'R' * 64}  "}, tool="create_agent")
    assert parsed.model_dump(exclude_none=True) == {"name": "R" * 64}


# Tools whose input is exactly what the host is sent: the input *is* the host's payload model.
SAME_AS_PAYLOAD: dict[str, type[actions.Payload]] = {
    "cancel_task": actions.SeriesPayload,
    "pause_task": actions.SeriesPayload,
    "resume_task": actions.SeriesPayload,
    "create_agent": actions.CreateAgentPayload,
    "install_packages": actions.InstallPackagesPayload,
    "add_mcp_server": actions.AddMcpServerPayload,
    "add_destination": actions.AddDestinationPayload,
    "remove_destination": actions.RemoveDestinationPayload,
    "wire_chat": actions.WireChatPayload,
    "unwire_chat": actions.UnwireChatPayload,
    "add_mount": actions.AddMountPayload,
    "restart_agent": actions.RestartAgentPayload,
    "admin_request": actions.AdminRequestPayload,
}
# The task tools' inputs differ from their payloads (a local time, no task id yet), but the
# fields the host limits are typed with the contract's own field types.
SHARED_FIELDS = [
    ("schedule_task", actions.ScheduleTaskPayload, ("prompt", "script")),
    ("update_task", actions.UpdateTaskPayload, ("prompt", "script")),
]


def _constraints(model: type[BaseModel], field: str) -> tuple[Any, ...]:
    """What a field accepts: its type, constraints and default (not its description)."""
    info = model.model_fields[field]
    return (info.annotation, info.metadata, info.default)


def test_a_pass_through_tools_input_is_the_hosts_payload_model() -> None:
    assert sorted(SAME_AS_PAYLOAD) == sorted(
        name
        for name in TOOLS
        if name not in ("schedule_task", "update_task")
        and getattr(TOOLS[name], "host_action", None)
    )
    for name, payload in SAME_AS_PAYLOAD.items():
        model = TOOLS[name].input_model
        assert issubclass(model, payload), name
        assert model.model_fields.keys() == payload.model_fields.keys(), name
        for field in model.model_fields:
            assert _constraints(model, field) == _constraints(payload, field), f"{name}.{field}"


@pytest.mark.parametrize(("tool", "payload", "fields"), SHARED_FIELDS)
def test_the_task_tools_limit_their_texts_with_the_hosts_field_types(
    tool: str, payload: type[BaseModel], fields: tuple[str, ...]
) -> None:
    model = TOOLS[tool].input_model
    for field in fields:
        assert _constraints(model, field) == _constraints(payload, field), f"{tool}.{field}"
    schema = TOOLS["schedule_task"].definition()["input_schema"]["properties"]
    assert schema["prompt"]["maxLength"] == actions.MAX_PROMPT_CHARS == 20_000
    assert schema["script"]["maxLength"] == actions.MAX_SCRIPT_CHARS == 20_000
    name = TOOLS["create_agent"].definition()["input_schema"]["properties"]["name"]
    assert name["maxLength"] == actions.MAX_AGENT_NAME_CHARS == 64
    instructions = TOOLS["create_agent"].definition()["input_schema"]["properties"]
    assert instructions["instructions"]["maxLength"] == actions.MAX_INSTRUCTIONS_CHARS


def test_wire_chat_offers_exactly_the_hosts_engage_modes() -> None:
    engage = WireChatInput.model_fields["engage"].annotation
    (literal, _none) = get_args(engage)
    assert sorted(get_args(literal)) == sorted(m.value for m in EngageMode)
    schema = TOOLS["wire_chat"].definition()["input_schema"]["properties"]["engage"]
    assert sorted(schema["enum"]) == sorted(m.value for m in EngageMode)


def test_builtin_tool_inputs_pass_over_unknown_fields_but_check_known_ones() -> None:
    assert parse_input(BashInput, {"command": "ls", "later": 1}, tool="bash").command == "ls"
    with pytest.raises(ToolError, match=r"'restart': Input should be a valid boolean"):
        parse_input(BashInput, {"restart": "yes"}, tool="bash")
    with pytest.raises(ToolError, match=r"'command': Input should be 'view', 'create'"):
        parse_input(EditorInput, {"command": "undo_edit", "path": "f"}, tool="editor")
    with pytest.raises(ToolError, match=r"'view_range': List should have at least 2 items"):
        parse_input(EditorInput, {"command": "view", "path": "f", "view_range": [1]}, tool="e")
