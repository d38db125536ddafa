"""The shared limiter on a fake clock: window, one shared back-off on 429, slow-down, deadline."""

from __future__ import annotations

import pytest

from backup_monitor.scalingo.errors import OutOfTimeError
from backup_monitor.scalingo.limiter import RateLimiter


class Clock:
    """A fake monotonic clock whose sleep advances it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(per_minute: int | None = 40) -> tuple[RateLimiter, Clock]:
    clock = Clock()
    return RateLimiter(per_minute, clock=clock, sleep=clock.sleep), clock


def test_at_most_the_limit_in_any_window() -> None:
    lim, _ = limiter(4)
    times = [lim.acquire() for _ in range(9)]
    assert times[:4] == [1000.0] * 4
    assert times[4] == pytest.approx(1060.0, abs=0.01)
    assert times[8] == pytest.approx(1120.0, abs=0.01)


def test_a_429_without_retry_after_pauses_until_the_window_frees() -> None:
    lim, clock = limiter(40)
    for _ in range(10):
        lim.acquire()
    clock.now += 20
    sent = lim.acquire()
    pause = lim.back_off(sent)
    assert pause == pytest.approx(40.0)  # the oldest request leaves the window 60 s after it was sent
    assert lim.acquire() == pytest.approx(1060.0)


def test_a_429_with_an_empty_window_pauses_a_few_seconds_then_longer() -> None:
    lim, clock = limiter(40)
    first = lim.back_off(clock.now - 1)
    assert first >= 5.0
    clock.now += first
    sent = lim.acquire()
    second = lim.back_off(sent)
    assert second >= 2 * first or second >= 55  # consecutive back-offs grow (until the window frees)


def test_retry_after_is_honoured_for_everyone() -> None:
    lim, _ = limiter(40)
    sent = lim.acquire()
    lim.back_off(sent, retry_after=12.0)
    assert lim.acquire() == pytest.approx(1012.0)


def test_the_limit_slows_once_per_back_off_and_recovers_next_check() -> None:
    lim, _ = limiter(40)
    sent = [lim.acquire() for _ in range(20)]
    lim.back_off(sent[-1])
    assert lim.per_minute == 15  # three quarters of the 20 the window held
    # answers to requests sent before the back-off began bring no news: no further slow-down
    for at in sent[:-1]:
        lim.back_off(at)
    assert lim.per_minute == 15
    assert lim.backoffs == 1
    assert lim.rate_limited == 20
    lim.reset()
    assert lim.per_minute == 40


def test_the_slow_down_has_a_floor() -> None:
    lim, _ = limiter(40)
    for _ in range(5):
        lim.back_off(lim.acquire())
    assert lim.per_minute == 10


def test_an_unlimited_host_gets_a_limit_from_its_first_429() -> None:
    lim, _ = limiter(None)
    sent = [lim.acquire() for _ in range(100)]
    lim.back_off(sent[-1])
    assert lim.per_minute == 75


def test_no_request_starts_past_the_deadline_and_nothing_waits_for_it() -> None:
    lim, clock = limiter(2)
    lim.acquire(deadline=1030.0)
    lim.acquire(deadline=1030.0)
    with pytest.raises(OutOfTimeError):
        lim.acquire(deadline=1030.0)  # the next slot is at 1060
    assert clock.slept == []
    clock.now = 1031.0
    with pytest.raises(OutOfTimeError):
        lim.acquire(deadline=1030.0)
