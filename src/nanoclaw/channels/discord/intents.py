"""The Message Content intent: what 4014 means, how to see it in the app's flags, and the fix."""

from __future__ import annotations

from nanoclaw.errors import ChannelError

CLOSE_DISALLOWED_INTENTS = 4014
# Application flags (Discord API docs: Application › Application Flags).
GATEWAY_MESSAGE_CONTENT = 1 << 18  # verified apps (100+ servers) with the intent approved
GATEWAY_MESSAGE_CONTENT_LIMITED = 1 << 19  # unverified apps with the toggle on
FIX = (
    "turn on Message Content Intent in the Developer Portal → your app → Bot → Privileged"
    " Gateway Intents; then restart"
)
PORTAL_URL = "https://discord.com/developers/applications"


def has_message_content(flags: int) -> bool:
    return bool(flags & (GATEWAY_MESSAGE_CONTENT | GATEWAY_MESSAGE_CONTENT_LIMITED))


class MessageContentIntentError(ChannelError):
    """The gateway closed with 4014, or the app's flags lack the Message Content intent."""

    names_its_fix = True  # the message says what to do; doctor adds no other advice

    def __init__(self, *, close_code: int | None = CLOSE_DISALLOWED_INTENTS) -> None:
        why = (
            f"Discord gateway closed {close_code} (disallowed intents)"
            if close_code is not None
            else "the bot lacks the Message Content intent"
        )
        super().__init__(f"{why}: {FIX}", channel="discord")
        self.close_code = close_code
