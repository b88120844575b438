"""The time zone and the owner's name: detected or given, confirmed with a terminal."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nanoclaw.admin.bootstrap import operator_handle

from .prompts import Prompter


def check_zone(value: str) -> str | None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return f"{value!r} is not an IANA time zone (e.g. Europe/Berlin, America/New_York)"
    return None


def choose_timezone(prompter: Prompter, *, given: str | None, detected: str) -> str:
    """A flag or variable wins; else the detected zone, confirmed, and always asked when UTC."""
    if given:
        problem = check_zone(given)
        if problem:
            from .progress import StepFailedError

            raise StepFailedError("timezone", problem, hint="pass --timezone Area/City")
        return given
    if not prompter.interactive:
        return detected
    if detected in ("UTC", "Etc/UTC"):
        prompter.out.write(
            "    This machine says UTC. Schedules ('every day at 9am') use your time zone,\n"
            "    so enter yours (e.g. Europe/Berlin), or press Enter if UTC is right.\n"
        )
        return prompter.ask("Your time zone", default="UTC", check=check_zone)
    if prompter.confirm(f"Your time zone is {detected}. Is that right?"):
        return detected
    return prompter.ask("Your time zone", check=check_zone)


def choose_owner_name(prompter: Prompter, *, given: str | None, current: str | None) -> str:
    if given:
        return given.strip()
    default = current or operator_handle()
    if not prompter.interactive:
        return default
    return prompter.ask("Your name (how your assistant will address you)", default=default)


def choose_agent_name(prompter: Prompter, *, given: str | None, default: str) -> str:
    if given:
        return given.strip()
    if not prompter.interactive:
        return default
    return prompter.ask("Your assistant's name", default=default)
