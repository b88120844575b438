"""Turn a batch of inbound rows into the prompt the model sees (upstream §5 formatter)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from agent_runner.rows import Destination, InboundRow
from nanoclaw.contract.timeutil import parse_iso

_KIND_ORDER = {"chat": 0, "task": 1, "webhook": 2, "system": 3}


def escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def local_time(stamp: str, tz: ZoneInfo) -> str:
    """``Jan 5, 2026, 9:03 PM`` in the session's time zone."""
    moment: datetime = parse_iso(stamp).astimezone(tz)
    hour = moment.hour % 12 or 12
    suffix = "AM" if moment.hour < 12 else "PM"
    return f"{moment:%b} {moment.day}, {moment.year}, {hour}:{moment:%M} {suffix}"


def source_name(row: InboundRow, destinations: Sequence[Destination]) -> str:
    """The destination name the agent can reply to, else ``unknown:<type>:<platform>``."""
    for dest in destinations:
        if dest.type == "channel" and (dest.channel_type, dest.platform_id) == (
            row.channel_type,
            row.platform_id,
        ):
            return dest.name
        if (
            dest.type == "agent"
            and row.channel_type == "agent"
            and dest.agent_group_id == row.platform_id
        ):
            return dest.name
    if row.channel_type == "agent":
        return "system"
    return f"unknown:{row.channel_type}:{row.platform_id}"


def _chat(
    row: InboundRow,
    destinations: Sequence[Destination],
    tz: ZoneInfo,
    session_dir: Path | None,
    reply_seq: int | None,
) -> str:
    content = row.content
    sender = content.get("sender_name") or content.get("sender") or "unknown"
    attrs = (
        f'id="{row.seq}" from="{escape(source_name(row, destinations))}"'
        f' sender="{escape(str(sender))}" time="{local_time(row.timestamp, tz)}"'
    )
    lines: list[str] = []
    reply = content.get("reply_to")
    if isinstance(reply, dict) and reply.get("id"):
        # The id the agent knows the replied-to message by (its seq), else the platform's.
        attrs += f' reply_to="{escape(str(reply_seq if reply_seq is not None else reply["id"]))}"'
        quoted = reply.get("text")
        if quoted:
            who = escape(str(reply.get("sender") or "unknown"))
            lines.append(f'<quoted_message from="{who}">{escape(str(quoted))}</quoted_message>')
    lines.append(escape(row.text))
    for attachment in content.get("attachments") or []:
        name = attachment.get("name", "file")
        path = attachment.get("path")
        if path and session_dir is not None:
            path = str(session_dir / str(path))  # the path the agent's tools can open
        kind = attachment.get("mime") or "file"
        where = f" — saved to {path}" if path else ""
        lines.append(f"[{escape(str(kind))}: {escape(str(name))}{escape(where)}]")
    body = "\n".join(lines)
    return f"<message {attrs}>{body}</message>"


def _task(row: InboundRow, tz: ZoneInfo) -> str:
    output = row.content.get("script_output")
    body = escape(str(row.content.get("prompt", "")))
    if output:
        body = f"Script output:\n{escape(str(output))}\n\nInstructions:\n{body}"
    return f'<task id="{row.seq}" time="{local_time(row.timestamp, tz)}">{body}</task>'


def _system(row: InboundRow) -> str:
    action = escape(str(row.content.get("action", "")))
    status = escape(str(row.content.get("status", "")))
    body = escape(str(row.content.get("text") or row.content.get("result") or ""))
    return f'<system_response id="{row.seq}" action="{action}" status="{status}">{body}</system_response>'


def format_batch(
    rows: Sequence[InboundRow],
    destinations: Sequence[Destination],
    tz_name: str,
    *,
    session_dir: Path | None = None,
    reply_seqs: Mapping[str, int] | None = None,
) -> str:
    """The prompt for one batch; ``reply_seqs`` maps a row id to the seq of the message it
    replies to, when the agent can see that message."""
    tz = ZoneInfo(tz_name)
    seqs = reply_seqs or {}
    # A restart note (on_wake) is read first, before what waited for the fresh runner.
    ordered = sorted(rows, key=lambda r: (_KIND_ORDER.get(r.kind, 9), -r.on_wake, r.seq))
    chats = [
        _chat(r, destinations, tz, session_dir, seqs.get(r.id)) for r in ordered if r.kind == "chat"
    ]
    others: list[str] = []
    for row in ordered:
        if row.kind == "task":
            others.append(_task(row, tz))
        elif row.kind == "webhook":
            source = escape(str(row.content.get("source", "")))
            event = escape(str(row.content.get("event", "")))
            others.append(
                f'<webhook source="{source}" event="{event}">{escape(row.text)}</webhook>'
            )
        elif row.kind == "system":
            others.append(_system(row))
    parts = [f'<context timezone="{escape(tz_name)}" />']
    if len(chats) > 1:
        parts.append("<messages>\n" + "\n".join(chats) + "\n</messages>")
    elif chats:
        parts.append(chats[0])
    parts.extend(others)
    return "\n".join(parts)
