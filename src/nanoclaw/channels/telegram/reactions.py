"""Telegram reactions: bots may react only with the emoji of ``ReactionTypeEmoji`` (Bot API).

An emoji outside the set maps to the nearest allowed one; one with no near match is
refused with ``ReactionNotAllowedError``, whose message lists the allowed set for the agent.
"""

from __future__ import annotations

from nanoclaw.errors import DeliveryError

# The "emoji" values ReactionTypeEmoji allows (Bot API, "ReactionTypeEmoji").
ALLOWED_REACTIONS: tuple[str, ...] = (
    "❤",
    "👍",
    "👎",
    "🔥",
    "🥰",
    "👏",
    "😁",
    "🤔",
    "🤯",
    "😱",
    "🤬",
    "😢",
    "🎉",
    "🤩",
    "🤮",
    "💩",
    "🙏",
    "👌",
    "🕊",
    "🤡",
    "🥱",
    "🥴",
    "😍",
    "🐳",
    "❤\u200d🔥",
    "🌚",
    "🌭",
    "💯",
    "🤣",
    "⚡",
    "🍌",
    "🏆",
    "💔",
    "🤨",
    "😐",
    "🍓",
    "🍾",
    "💋",
    "🖕",
    "😈",
    "😴",
    "😭",
    "🤓",
    "👻",
    "👨\u200d💻",
    "👀",
    "🎃",
    "🙈",
    "😇",
    "😨",
    "🤝",
    "✍",
    "🤗",
    "🫡",
    "🎅",
    "🎄",
    "☃",
    "💅",
    "🤪",
    "🗿",
    "🆒",
    "💘",
    "🙉",
    "🦄",
    "😘",
    "💊",
    "🙊",
    "😎",
    "👾",
    "🤷\u200d♂",
    "🤷",
    "🤷\u200d♀",
    "😡",
)
_ALLOWED = frozenset(ALLOWED_REACTIONS)

# Slack-style names and common emoji outside the set → the nearest allowed emoji.
NEAREST: dict[str, str] = {
    "thumbsup": "👍",
    "+1": "👍",
    "thumbsdown": "👎",
    "-1": "👎",
    "heart": "❤",
    "fire": "🔥",
    "eyes": "👀",
    "tada": "🎉",
    "pray": "🙏",
    "ok_hand": "👌",
    "100": "💯",
    "joy": "🤣",
    "😂": "🤣",
    "white_check_mark": "👍",
    "✅": "👍",
    "✔": "👍",
    "☑": "👍",
    "heavy_check_mark": "👍",
    "x": "👎",
    "❌": "👎",
    "thinking_face": "🤔",
    "clap": "👏",
    "smile": "😁",
    "grinning": "😁",
    "😀": "😁",
    "😃": "😁",
    "😄": "😁",
    "🙂": "😁",
    "😊": "🥰",
    "heart_eyes": "😍",
    "cry": "😢",
    "sob": "😭",
    "rage": "😡",
    "😠": "😡",
    "zap": "⚡",
    "trophy": "🏆",
    "🥇": "🏆",
    "⭐": "🏆",
    "🌟": "🤩",
    "star_struck": "🤩",
    "🚀": "⚡",
    "💪": "👏",
    "🙌": "👏",
    "handshake": "🤝",
    "wave": "🤝",
    "👋": "🤝",
    "💙": "❤",
    "💚": "❤",
    "💛": "❤",
    "💜": "❤",
    "🧡": "❤",
    "🖤": "❤",
    "🤍": "❤",
    "♥": "❤",
    "hourglass_flowing_sand": "👀",
    "⏳": "👀",
    "⌛": "👀",
    "sunglasses": "😎",
    "shrug": "🤷",
    "see_no_evil": "🙈",
    "sleeping": "😴",
    "nerd_face": "🤓",
    "ghost": "👻",
    "unicorn": "🦄",
    "cool": "🆒",
}
_VARIATION_SELECTORS = ("\ufe0f", "\ufe0e")


class ReactionNotAllowedError(DeliveryError):
    """Telegram would answer 400 REACTION_INVALID: the agent is told which emoji it may use."""

    def __init__(self, emoji: str) -> None:
        super().__init__(
            f"Telegram bots can react only with {' '.join(ALLOWED_REACTIONS)};"
            f" {emoji!r} has no near match, so no reaction was set",
            retryable=False,
        )
        self.emoji = emoji


def allowed_reaction(emoji: str) -> str:
    """The allowed emoji for ``emoji`` (itself, without variation selectors, or the nearest)."""
    raw = emoji.strip()
    name = raw.strip(":")
    bare = raw
    for selector in _VARIATION_SELECTORS:
        bare = bare.replace(selector, "")
    for candidate in (raw, bare):
        if candidate in _ALLOWED:
            return candidate
    for candidate in (name, raw, bare):
        if candidate in NEAREST:
            return NEAREST[candidate]
    raise ReactionNotAllowedError(raw)
