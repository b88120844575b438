"""Slack message text (escaped, with ``<…>`` entities) → the text a person reads.

Slack escapes ``&``, ``<`` and ``>`` and writes references as ``<@U…>``, ``<#C…|name>``,
``<!here>``, ``<!subteam^S…|@team>``, ``<!date^…|fallback>`` and links as ``<url|label>``
(Slack API docs, "Formatting text for app surfaces"). ``to_readable`` resolves user and
channel ids to names through the given async resolvers and unescapes everything once, so
``is 3 &lt; 5 &amp;&amp; 7 &gt; 2?`` reaches the agent as ``is 3 < 5 && 7 > 2?`` and a
labelled link as ``[label](url)``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

Resolver = Callable[[str], Awaitable[str | None]]

_ENTITY = re.compile(r"<([^<>\n]+)>")
_SPECIAL = {"here": "@here", "channel": "@channel", "everyone": "@everyone"}


def unescape(text: str) -> str:
    """Slack's three escapes, undone once (``&amp;lt;`` stays the literal ``&lt;``)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


async def _entity(body: str, users: Resolver, channels: Resolver) -> str:
    target, _, label = body.partition("|")
    label = unescape(label)
    if target.startswith("@"):
        name = label or await users(target[1:])
        return f"@{name or target[1:]}"
    if target.startswith("#"):
        name = label or await channels(target[1:])
        return f"#{name or target[1:]}"
    if target.startswith("!"):
        word = target[1:]
        if word in _SPECIAL:
            return _SPECIAL[word]
        if word.startswith("subteam^"):
            return label or f"@{word.removeprefix('subteam^')}"
        return label or word.split("^", 1)[0]  # <!date^…|fallback>
    url = unescape(target)
    if url.startswith("mailto:") and (not label or label == url.removeprefix("mailto:")):
        return url.removeprefix("mailto:")
    if not label or label == url:
        return url
    return f"[{label}]({url})"


async def to_readable(text: str, *, users: Resolver, channels: Resolver) -> str:
    """See the module docstring; text outside entities is unescaped exactly once."""
    parts: list[str] = []
    at = 0
    for match in _ENTITY.finditer(text):
        parts.append(unescape(text[at : match.start()]))
        parts.append(await _entity(match.group(1), users, channels))
        at = match.end()
    parts.append(unescape(text[at:]))
    return "".join(parts)
