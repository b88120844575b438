"""User-regex match time: RE2 (what the host runs) against Python's backtracking ``re``, as JSON.

For the catastrophic engage patterns of issue #10 (``(x+x+)+y``, ``(a+)+$``) it times the host's
own matcher (``nanoclaw.routing.engage.pattern_matches``, RE2) on the 40-character message that
froze the old host and on a 100 KB message, next to a benign pattern measured in the same run.
Python's ``re`` is timed on the same pattern for short inputs only (it doubles per character);
its 40-character time is extrapolated from the measured growth, never run. Results go to
``benchmarks/results/regex.json``.

    .venv/bin/python benchmarks/regex_bench.py [--repeat 2000]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from benchmarks.common import summary  # noqa: E402 - needs the path above
from nanoclaw.routing.engage import pattern_matches  # noqa: E402

CASES = {"(x+x+)+y": "x", "(a+)+$": "a"}
BENIGN = r"^@andy\b"
PYTHON_RE_LENGTHS = (14, 16, 18, 20, 22)


def timed_ms(fn: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def python_re_growth(pattern: str, char: str) -> dict[str, object]:
    compiled = re.compile(pattern)
    tail = "" if "y" in pattern else "!"
    per_length = {}
    for n in PYTHON_RE_LENGTHS:
        text = char * n + tail
        start = time.perf_counter()
        compiled.search(text)
        per_length[n] = (time.perf_counter() - start) * 1000
    lengths = sorted(per_length)
    # geometric mean growth over the measured range (single samples are noisy on a shared host)
    per_char = (per_length[lengths[-1]] / per_length[lengths[0]]) ** (
        1 / (lengths[-1] - lengths[0])
    )
    at_40_s = per_length[lengths[-1]] * per_char ** (40 - lengths[-1]) / 1000
    return {
        "measured_ms": {str(k): round(v, 3) for k, v in per_length.items()},
        "growth_per_char": round(per_char, 3),
        "extrapolated_40_chars_s": round(at_40_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    results: dict[str, object] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "repeat": args.repeat,
    }
    benign_40 = summary(timed_ms(lambda: pattern_matches(BENIGN, "x" * 40), args.repeat), digits=4)
    results["benign_re2_40_chars"] = benign_40
    for pattern, char in CASES.items():
        short = char * 40 + ("" if "y" in pattern else "!")
        long = char * 100_000 + ("" if "y" in pattern else "!")
        re2_40 = summary(timed_ms(partial(pattern_matches, pattern, short), args.repeat),
                         digits=4)  # fmt: skip
        re2_100k = summary(timed_ms(partial(pattern_matches, pattern, long), 50), digits=3)
        results[pattern] = {
            "re2_40_chars": re2_40,
            "re2_100k_chars": re2_100k,
            "re2_40_vs_benign_p50_ratio": round(re2_40["p50_ms"] / benign_40["p50_ms"], 2),
            "python_re": python_re_growth(pattern, char),
        }
    out = REPO / "benchmarks" / "results" / "regex.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
