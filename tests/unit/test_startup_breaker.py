"""The start-up breaker: only crash loops wait (10, 30, 120, 300, 900 s), clock injected."""

from __future__ import annotations

from pathlib import Path

from nanoclaw.service.breaker import StartupBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def crash_loop(breaker: StartupBreaker, clock: Clock, starts: int) -> list[float]:
    delays = []
    for _ in range(starts):
        decision = breaker.on_start()  # never followed by on_clean_stop: each run crashes
        delays.append(decision.delay_s)
        clock.now += decision.delay_s + 5
    return delays


def test_repeated_crashes_wait_longer_and_longer(tmp_path: Path) -> None:
    clock = Clock()
    breaker = StartupBreaker(data_path=tmp_path, clock=clock)
    # the first start and the restart after one crash are immediate; then the schedule
    assert crash_loop(breaker, clock, 9) == [0, 0, 10, 30, 120, 300, 900, 900, 900]
    assert breaker.status()["crashes_last_hour"] >= 5


def test_a_clean_stop_resets_it(tmp_path: Path) -> None:
    clock = Clock()
    breaker = StartupBreaker(data_path=tmp_path, clock=clock)
    crash_loop(breaker, clock, 4)
    breaker.on_clean_stop()
    assert breaker.on_start().delay_s == 0 and breaker.status()["crashes_last_hour"] == 0


def test_an_hour_of_health_resets_it(tmp_path: Path) -> None:
    clock = Clock()
    breaker = StartupBreaker(data_path=tmp_path, clock=clock)
    crash_loop(breaker, clock, 4)
    breaker.on_start()
    clock.now += 3600  # this run stayed up an hour, then crashed
    decision = breaker.on_start()
    assert decision.crashes == 1 and decision.delay_s == 0


def test_a_user_start_skips_the_wait_once(tmp_path: Path) -> None:
    clock = Clock()
    breaker = StartupBreaker(data_path=tmp_path, clock=clock)
    crash_loop(breaker, clock, 4)
    breaker.request_skip()
    skipped = breaker.on_start()
    assert skipped.delay_s == 0 and skipped.skipped and "skipped" in skipped.describe()
    clock.now += 5
    assert breaker.on_start().delay_s > 0  # the marker is consumed: the loop waits again


def test_the_wait_is_visible_in_status(tmp_path: Path) -> None:
    clock = Clock()
    breaker = StartupBreaker(data_path=tmp_path, clock=clock)
    delays = crash_loop(breaker, clock, 4)
    clock.now -= delays[-1] + 5  # back to the moment of the last start
    assert delays[-1] == 30 and breaker.status()["waiting_s"] == 30
