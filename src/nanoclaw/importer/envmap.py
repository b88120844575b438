"""Map a source ``.env`` onto ours: names translated, existing keys never overwritten, the rest listed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# Source name → our name. Channel tokens keep their names.
TRANSLATED = {
    "ANTHROPIC_API_KEY": "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL": "ANTHROPIC_BASE_URL",
    "ANTHROPIC_AUTH_TOKEN": "ANTHROPIC_AUTH_TOKEN",
    "TZ": "NANOCLAW_TIMEZONE",
    "TELEGRAM_BOT_TOKEN": "TELEGRAM_BOT_TOKEN",
    "SLACK_BOT_TOKEN": "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN": "SLACK_APP_TOKEN",
    "DISCORD_BOT_TOKEN": "DISCORD_BOT_TOKEN",
    "ASSISTANT_HAS_OWN_NUMBER": "NANOCLAW_WHATSAPP_OWN_NUMBER",  # WhatsApp: shared number or not
}
# Read by the importer itself (agent names), not copied.
CONSUMED = frozenset({"ASSISTANT_NAME"})
SECRET_NAMES = ("KEY", "TOKEN", "SECRET", "PASSWORD")


def parse_env(text: str) -> dict[str, str]:
    """``KEY=value`` lines (``export`` and quotes allowed); comments and junk are ignored."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        if line.startswith("export "):
            line = line[len("export ") :]
        key, _, value = line.partition("=")
        key = key.strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if key.replace("_", "").isalnum():
            values[key] = value
    return values


def is_secret(name: str) -> bool:
    return any(part in name.upper() for part in SECRET_NAMES)


@dataclass
class EnvMerge:
    added: list[str] = field(default_factory=list)  # our names written
    kept: list[str] = field(default_factory=list)  # ours already set: left alone
    unsupported: list[str] = field(default_factory=list)  # source names not carried
    lines: list[str] = field(default_factory=list)  # what to append to our .env


def plan_env_merge(source: dict[str, str], target_env: Path) -> EnvMerge:
    ours = parse_env(target_env.read_text()) if target_env.is_file() else {}
    merge = EnvMerge()
    for name, value in sorted(source.items()):
        if name in CONSUMED:
            continue
        target = TRANSLATED.get(name)
        if target is None:
            merge.unsupported.append(name)
            continue
        if not value:
            continue
        if target in ours:
            merge.kept.append(target)
            continue
        merge.added.append(target)
        merge.lines.append(f"{target}={value}")
    return merge


def apply_env_merge(merge: EnvMerge, target_env: Path) -> None:
    """Append the new keys; the file stays mode 0600 (it may now hold a credential)."""
    if not merge.lines:
        return
    existing = target_env.read_text() if target_env.is_file() else ""
    block = "\n# imported by nanoclaw import\n" + "\n".join(merge.lines) + "\n"
    if existing and not existing.endswith("\n"):
        block = "\n" + block
    target_env.write_text(existing + block)
    target_env.chmod(0o600)
