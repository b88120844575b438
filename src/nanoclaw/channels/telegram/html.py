"""Markdown (as models write it) → Telegram HTML parse mode; code spans kept, ``& < >`` escaped.

Links (``[label](url)`` and bare URLs) are set aside before any formatting runs, so
emphasis markers inside a URL never rewrite its target.
"""

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
_BARE_URL = re.compile(r"https?://[^\s<>]+[^\s<>.,;:!?)\]'\"]")
_KEPT = re.compile(r"\x00(\d+)\x00")


def _prose(text: str) -> str:
    kept: list[str] = []

    def keep(rendered: str) -> str:
        kept.append(rendered)
        return f"\x00{len(kept) - 1}\x00"

    text = text.replace("\x00", "")
    text = _LINK.sub(
        lambda m: keep(
            f'<a href="{html.escape(m.group(2), quote=True)}">'
            f"{html.escape(m.group(1), quote=False)}</a>"
        ),
        text,
    )
    text = _BARE_URL.sub(lambda m: keep(html.escape(m.group(0), quote=False)), text)
    text = html.escape(text, quote=False)
    text = _HEADING.sub(lambda m: f"<b>{m.group(1)}</b>", text)
    text = _BULLET.sub(lambda m: f"{m.group(1)}• ", text)
    text = _BOLD.sub(lambda m: f"<b>{m.group(2)}</b>", text)
    text = _ITALIC.sub(lambda m: f"<i>{m.group(1)}</i>", text)
    text = _STRIKE.sub(lambda m: f"<s>{m.group(1)}</s>", text)
    return _KEPT.sub(lambda m: kept[int(m.group(1))], text)


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
