"""Every frame of the CLI socket protocol as a pydantic model (docs/cli-protocol.md is checked against them)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

CHAT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
HANDLE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}$"
MAX_TEXT_CHARS = 200_000
MAX_ID_CHARS = 128
MAX_ACK_IDS = 1000

ChatName = Annotated[str, StringConstraints(pattern=CHAT_NAME_PATTERN)]
Handle = Annotated[str, StringConstraints(pattern=HANDLE_PATTERN)]
FrameId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]


class _Frame(BaseModel):
    # Unknown fields are refused: a typo in a script's frame gets an error, not silence.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# -- client → host -----------------------------------------------------------------------------
class Hello(_Frame):
    """Subscribe to a chat; the host replays its unacknowledged replies, then answers ``ready``."""

    type: Literal["hello"]
    chat: ChatName = "local"
    # False: follow the chat from now on and leave its unacknowledged replies for another
    # client (what ``nanoclaw chat -m`` does: a script wants the answer to its own message).
    replay: bool = True


class Message(_Frame):
    """A message from ``cli:<sender>`` into the chat (a direct message to the assistant)."""

    type: Literal["message"]
    chat: ChatName = "local"
    sender: Handle
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS, pattern=r"\S")]
    id: FrameId | None = None
    sender_name: Annotated[str, StringConstraints(max_length=MAX_ID_CHARS)] | None = None
    reply_to: FrameId | None = None  # the id of an earlier message or reply of this chat


class Action(_Frame):
    """A card answer (a button click): the option ``value`` of card ``question_id``."""

    type: Literal["action"]
    chat: ChatName = "local"
    sender: Handle
    question_id: FrameId
    value: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS)]
    id: FrameId | None = None


class Ack(_Frame):
    """The client has shown these reply frames: they are recorded delivered, never sent again."""

    type: Literal["ack"]
    chat: ChatName = "local"
    ids: Annotated[list[FrameId], Field(min_length=1, max_length=MAX_ACK_IDS)]


ClientFrame = Annotated[Hello | Message | Action | Ack, Field(discriminator="type")]
CLIENT_FRAME: TypeAdapter[Hello | Message | Action | Ack] = TypeAdapter(ClientFrame)


# -- host → client -----------------------------------------------------------------------------
class Ready(_Frame):
    type: Literal["ready"] = "ready"
    chat: str


class Accepted(_Frame):
    type: Literal["accepted"] = "accepted"
    id: str
    agents: int
    waiting: list[str]


class Notice(_Frame):
    """Why a message reached no agent, or how many backlog replies were dropped."""

    type: Literal["notice"] = "notice"
    id: str | None = None
    reason: str | None
    text: str | None
    count: int | None = None  # reason "backlog_dropped": how many replies were dropped


class CardOptionFrame(_Frame):
    # Built by the host from its own cards: keys a newer card carries are passed over, not fatal.
    model_config = ConfigDict(extra="ignore", frozen=True)

    label: str
    value: str


class CardFrame(_Frame):
    model_config = ConfigDict(extra="ignore", frozen=True)

    question_id: str
    title: str
    question: str
    options: list[CardOptionFrame]


class Reply(_Frame):
    """An agent's (or the host's) message in this chat; acknowledge it with an ``ack``."""

    type: Literal["reply"] = "reply"
    chat: str
    id: str  # "cli-<n>", stable across host restarts
    text: str
    sender_name: str | None = None  # the replying agent's name; None for host notices
    files: list[str] | None = None
    card: CardFrame | None = None
    operation: str | None = None  # "edit" or "reaction": an operation on an earlier reply
    message_id: str | None = None  # the earlier reply an operation applies to
    emoji: str | None = None  # operation "reaction"
    # Set when this reply stands for a failure (not a text prefix): "agent_error" (the turn
    # failed), "not_processed" (the host gave up on the message) or "budget_spent".
    failure: str | None = None
    failure_detail: str | None = None


class Done(_Frame):
    type: Literal["done"] = "done"
    ids: list[str]
    failed: list[str] | None = None  # those that ended failed: the reply was a failure notice


class Typing(_Frame):
    """An agent is working on a turn in this chat (``on``) or has finished (``off``)."""

    type: Literal["typing"] = "typing"
    chat: str
    on: bool


class ActionResult(_Frame):
    type: Literal["action_result"] = "action_result"
    id: str | None
    text: str


class Error(_Frame):
    """The last frame was refused; the connection stays open."""

    type: Literal["error"] = "error"
    error: str
    field: str | None = None


HostFrame = Annotated[
    Ready | Accepted | Notice | Reply | Done | Typing | ActionResult | Error,
    Field(discriminator="type"),
]
HOST_FRAME: TypeAdapter[
    Ready | Accepted | Notice | Reply | Done | Typing | ActionResult | Error
] = TypeAdapter(HostFrame)


def json_schema() -> dict[str, Any]:
    """The protocol's JSON schema: both directions, as published in docs/cli-protocol.schema.json."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "NanoClaw CLI channel frames",
        "client_to_host": CLIENT_FRAME.json_schema(),
        "host_to_client": HOST_FRAME.json_schema(mode="serialization"),
    }
