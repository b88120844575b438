"""The CLI's settings, loaded once per process; every command module reads them from here."""

from __future__ import annotations

from nanoclaw.settings import Settings, load_settings


class _State:
    settings: Settings | None = None


def settings() -> Settings:
    """The settings of this CLI process (tests may set ``_State.settings`` first)."""
    if _State.settings is None:
        _State.settings = load_settings()
    return _State.settings
