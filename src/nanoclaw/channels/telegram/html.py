"""Markdown (as models write it) → Telegram HTML parse mode; code spans kept, ``& < >`` escaped."""

from __future__ import annotations

import html
import re

_CODE = re.compile(r"(```[\s\S]*?```|`[^`\n]+`)")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC = re.compile(r"(?<![\w*])[*_](?=\S)([^*_\n]+?)(?<=\S)[*_](?![\w*])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_BULLET = re.compile(r"^(\s*)[-*+]\s+", re.MULTILINE)


def _prose(text: str) -> str:
    text = html.escape(text, quote=False)
    # the text is escaped already; only a quote could still end the attribute
    text = _LINK.sub(
        lambda m: f'<a href="{m.group(2).replace(chr(34), "%22")}">{m.group(1)}</a>', text
    )
    text = _HEADING.sub(lambda m: f"<b>{m.group(1)}</b>", text)
    text = _BULLET.sub(lambda m: f"{m.group(1)}• ", text)
    text = _BOLD.sub(lambda m: f"<b>{m.group(2)}</b>", text)
    text = _ITALIC.sub(lambda m: f"<i>{m.group(1)}</i>", text)
    return _STRIKE.sub(lambda m: f"<s>{m.group(1)}</s>", text)


def _code(span: str) -> str:
    if span.startswith("```"):
        body = span[3:-3]
        first, nl, rest = body.partition("\n")
        if nl and re.fullmatch(r"[\w+#.-]*", first.strip()):
            body = rest
        return f"<pre>{html.escape(body, quote=False)}</pre>"
    return f"<code>{html.escape(span[1:-1], quote=False)}</code>"


def to_html(markdown: str) -> str:
    parts = _CODE.split(markdown)
    return "".join(_code(p) if i % 2 else _prose(p) for i, p in enumerate(parts))
