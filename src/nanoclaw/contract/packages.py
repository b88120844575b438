"""Package names an agent may ask for (shared by the runner's tool and the host's installer).

Only plain names (optionally pinned) pass: no options, URLs or paths reach pip or apt.
"""

from __future__ import annotations

import re
from typing import Any

MAX_PACKAGES = 20
PIP_RE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}(\[[A-Za-z0-9,._-]{1,100}\])?(==[A-Za-z0-9.*+!_-]{1,50})?$"
)
APT_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]{0,99}(=[A-Za-z0-9.+:~-]{1,50})?$")


class PackageNameError(ValueError):
    """A package list that cannot be installed; the message says why."""


def check_package_names(pip: Any, apt: Any) -> tuple[list[str], list[str]]:
    """De-duplicated ``(pip, apt)`` lists, or ``PackageNameError``: at most 20 in one request."""
    lists: list[list[str]] = []
    for key, raw, pattern in (("pip", pip, PIP_RE), ("apt", apt, APT_RE)):
        raw = raw or []
        if not isinstance(raw, list | tuple) or not all(isinstance(p, str) for p in raw):
            raise PackageNameError(f"'{key}' must be a list of package names")
        bad = [p for p in raw if not pattern.match(p)]
        if bad:
            raise PackageNameError(f"invalid {key} package names: {', '.join(bad)}")
        lists.append(list(dict.fromkeys(raw)))
    if not 1 <= len(lists[0]) + len(lists[1]) <= MAX_PACKAGES:
        raise PackageNameError(f"name 1 to {MAX_PACKAGES} packages")
    return lists[0], lists[1]
