"""Tool inputs as pydantic models: the API's ``input_schema`` generated from them, errors named."""

from __future__ import annotations

import abc
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from agent_runner.tools.base import FunctionTool, ToolEnv, ToolError, ToolOutput
from nanoclaw.contract.actions import Payload, describe

InputT = TypeVar("InputT", bound=BaseModel)


class ToolInput(Payload):
    """One tool's input, configured as the host's payloads (``nanoclaw.contract.actions``).

    Unknown fields are refused and types are not coerced ("3" is no integer). ``None`` for an
    optional field means "not given": the schema shows the field's own type only, and a model
    that sends ``null`` gets the default.
    """


def tool_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema as the Messages API takes it: one object, no ``$ref``, no titles."""
    raw = model.model_json_schema()
    defs = raw.pop("$defs", {})
    schema: dict[str, Any] = _clean(raw, defs)
    schema.setdefault("properties", {})
    return schema


def _clean(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_clean(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        # Inline ``#/$defs/<name>`` (tool inputs nest no recursive models), keeping siblings.
        target = defs[ref.removeprefix("#/$defs/")]
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        return _clean({**target, **siblings}, defs)
    any_of = node.get("anyOf")
    if isinstance(any_of, list) and {"type": "null"} in any_of:
        # ``X | None = None``: the model is shown X; null is accepted as "not given".
        rest = [s for s in any_of if s != {"type": "null"}]
        merged = {k: v for k, v in node.items() if k != "anyOf"}
        merged.update(rest[0] if len(rest) == 1 else {"anyOf": rest})
        if merged.get("default", ...) is None:
            del merged["default"]
        return _clean(merged, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue  # a schema keyword here; a property called "title" sits under "properties"
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: _clean(prop, defs) for name, prop in value.items()}
        else:
            out[key] = _clean(value, defs)
    return out


def parse_input(model: type[InputT], tool_input: dict[str, Any], *, tool: str) -> InputT:
    """Validate the model's input; a refusal is a :class:`ToolError` naming every bad field."""
    try:
        return model.model_validate(tool_input)
    except ValidationError as exc:
        problems = "; ".join(_describe(error, model) for error in exc.errors(include_url=False))
        raise ToolError(f"invalid input for {tool}: {problems}") from None


def _describe(error: ErrorDetails, model: type[BaseModel]) -> str:
    return describe(
        error,
        model.model_fields,
        noun="an input of this tool",
        plural="inputs",
        skip=_is_branch_label,
    )


def _is_branch_label(part: str | int) -> bool:
    """A union member's name pydantic puts in an error's location (``QuestionOption``, ...)."""
    return part in _STR_LABELS or part in {m.__name__ for m in _input_models(ToolInput)}


_STR_LABELS = frozenset({"str", "constrained-str"})


def _input_models(base: type[ToolInput]) -> list[type[ToolInput]]:
    return [base] + [m for sub in base.__subclasses__() for m in _input_models(sub)]


class ModelTool(FunctionTool, Generic[InputT]):
    """A custom tool whose input is ``input_model``: its schema is generated, its input parsed."""

    input_model: type[InputT]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        model = cls.__dict__.get("input_model")
        if model is not None:
            cls.schema = tool_schema(model)

    async def run(self, tool_input: dict[str, Any], env: ToolEnv) -> ToolOutput:
        return await self.call(parse_input(self.input_model, tool_input, tool=self.name), env)

    @abc.abstractmethod
    async def call(self, args: InputT, env: ToolEnv) -> ToolOutput:
        """Carry out the tool with its validated input."""
