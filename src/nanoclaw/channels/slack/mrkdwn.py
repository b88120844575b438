"""Markdown (as models write it) → Slack mrkdwn; code spans are kept verbatim, ``& < >`` escaped.

Text is escaped exactly once. Links (``[label](url)`` and bare URLs) are set aside before
any formatting runs, so emphasis markers inside a URL never rewrite its target.
"""

from __future__ import annotations

import re

_CODE = re.compile(r"(```[\s\S]*?```|`[^`\n]+`)")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_BULLET = re.compile(r"^(\s*)[-*+]\s+", re.MULTILINE)
_BARE_URL = re.compile(r"https?://[^\s<>]+[^\s<>.,;:!?)\]'\"]")
_BOLD_MARK = "\x01B\x01"
_KEPT = re.compile(r"\x00(\d+)\x00")


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _prose(text: str) -> str:
    kept: list[str] = []

    def keep(rendered: str) -> str:
        kept.append(rendered)
        return f"\x00{len(kept) - 1}\x00"

    text = text.replace("\x00", "").replace("\x01", "")
    text = _LINK.sub(lambda m: keep(f"<{escape(m.group(2))}|{escape(m.group(1))}>"), text)
    text = _BARE_URL.sub(lambda m: keep(escape(m.group(0))), text)
    text = escape(text)
    text = _HEADING.sub(lambda m: f"{_BOLD_MARK}{m.group(1)}{_BOLD_MARK}", text)
    text = _BOLD.sub(lambda m: f"{_BOLD_MARK}{m.group(2)}{_BOLD_MARK}", text)
    text = _BULLET.sub(lambda m: f"{m.group(1)}• ", text)
    text = _ITALIC.sub(lambda m: f"_{m.group(1)}_", text)
    text = _STRIKE.sub(lambda m: f"~{m.group(1)}~", text)
    text = text.replace(_BOLD_MARK, "*")
    return _KEPT.sub(lambda m: kept[int(m.group(1))], text)


def _code(span: str) -> str:
    if span.startswith("```"):
        body = span[3:-3]
        first, nl, rest = body.partition("\n")
        if nl and re.fullmatch(r"[\w+#.-]*", first.strip()):  # drop a language tag
            body = rest
        return f"```{escape(body)}```"
    return escape(span)


def to_mrkdwn(markdown: str) -> str:
    parts = _CODE.split(markdown)
    return "".join(_code(p) if i % 2 else _prose(p) for i, p in enumerate(parts))
