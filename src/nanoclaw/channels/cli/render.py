"""How the interactive chat shows frames: rich Markdown to ANSI text, cards as numbered options."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console
from rich.markdown import Markdown
from rich.text import Text

HOST_NAME = "nanoclaw"  # the label of host notices (replies without an agent's name)


def _console(width: int) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        force_terminal=True,
        color_system="standard",
        width=max(20, width),
        soft_wrap=False,
        emoji=False,
        highlight=False,
    )
    return console, buffer


def chat_markdown(text: str) -> Markdown:
    """Markdown as chat apps show it: a single newline is a line break, not a space."""
    lines, fenced = [], False
    for line in text.split("\n"):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        lines.append(line if fenced or not line.strip() else line + "  ")
    return Markdown("\n".join(lines))


def reply_text(frame: dict[str, Any], *, width: int) -> str:
    """A reply as ANSI text: the agent's name, then its Markdown rendered for the terminal."""
    console, buffer = _console(width)
    name = str(frame.get("sender_name") or HOST_NAME)
    operation = frame.get("operation")
    if operation == "reaction":
        console.print(Text.assemble((name, "bold cyan"), f" reacted {frame.get('emoji', '')}"))
        return buffer.getvalue()
    label = f"{name} (edited)" if operation == "edit" else name
    style = "bold cyan"
    console.print(Text(label + ":", style=style))
    text = str(frame.get("text") or "")
    card = frame.get("card")
    if text and not isinstance(card, dict):
        console.print(chat_markdown(text))
    if isinstance(card, dict):
        console.print(Text(str(card.get("title") or "Question"), style="bold"))
        console.print(chat_markdown(str(card.get("question") or "")))
        for n, option in enumerate(card.get("options") or [], start=1):
            console.print(Text.assemble((f"  {n}. ", "bold"), str(option.get("label", ""))))
        console.print(
            Text("Answer with the number, or press Tab to choose from the list.", style="dim")
        )
    for name_of_file in frame.get("files") or []:
        console.print(Text(f"📎 {name_of_file}", style="dim"))
    return buffer.getvalue()


def line_text(text: str, *, style: str = "dim", width: int = 100) -> str:
    console, buffer = _console(width)
    console.print(Text(text, style=style))
    return buffer.getvalue()
