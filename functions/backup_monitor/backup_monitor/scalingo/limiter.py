"""A thread-safe sliding-window limiter shared by every worker, with one shared back-off on 429.

A 429 means the quota is shared with someone else (the token's owner, another process): every caller pauses
(Retry-After when given, otherwise until the window frees, at least `min_pause`), and the limit drops to three
quarters of what the window held, for the rest of the check (`reset()` at the start of the next one).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from backup_monitor.scalingo.errors import OutOfTimeError

WINDOW_SECONDS = 60.0
SLOWDOWN = 0.75
ADAPTIVE_FLOOR_PER_WINDOW = 30  # an unlimited host slowed by 429s never drops below this


class RateLimiter:
    """At most `per_minute` acquisitions in any window (None: unlimited until the server says otherwise)."""

    def __init__(
        self,
        per_minute: int | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        window: float = WINDOW_SECONDS,
    ) -> None:
        if per_minute is not None and per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.configured = per_minute
        self.per_minute = per_minute
        self.window = window
        self.min_pause = window / 12  # 5 s for a one-minute window
        self._floor = max(1, per_minute // 4) if per_minute is not None else ADAPTIVE_FLOOR_PER_WINDOW
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()
        self._paused_until = 0.0
        self._last_backoff = float("-inf")
        self._streak = 0
        self.waited_seconds = 0.0
        self.acquired = 0
        self.backoffs = 0
        self.rate_limited = 0

    def __repr__(self) -> str:
        return f"RateLimiter(per_minute={self.per_minute}, window={self.window})"

    def _prune(self, now: float) -> None:
        while self._sent and now - self._sent[0] >= self.window:
            self._sent.popleft()

    def acquire(self, deadline: float | None = None, on_wait: Callable[[float], None] | None = None) -> float:
        """Wait until one more request fits (and no back-off is running), count it, return its send time.

        Raises OutOfTimeError, without waiting, when the wait would end past `deadline` (clock time).
        `on_wait` is told of each wait (seconds) before it starts (the command's progress line)."""
        while True:
            with self._lock:
                now = self._clock()
                self._prune(now)
                if now < self._paused_until:
                    wait = self._paused_until - now
                elif self.per_minute is None or len(self._sent) < self.per_minute:
                    if deadline is not None and now >= deadline:
                        raise OutOfTimeError("the check's time budget is spent")
                    self._sent.append(now)
                    self.acquired += 1
                    return now
                else:
                    wait = self.window - (now - self._sent[0]) + 0.001
                if deadline is not None and now + wait > deadline:
                    raise OutOfTimeError("the check's time budget is spent")
                self.waited_seconds += wait
            if on_wait is not None:
                on_wait(wait)
            self._sleep(wait)

    def back_off(self, sent_at: float, retry_after: float | None = None) -> float:
        """A request sent at `sent_at` got 429: pause everyone, and slow down once per back-off.

        Answers to requests sent before the last back-off began carry no news: they only extend the pause
        (by their Retry-After). Returns the pause in seconds from now."""
        with self._lock:
            now = self._clock()
            self._prune(now)
            self.rate_limited += 1
            fresh = sent_at > self._last_backoff
            if fresh:
                self.backoffs += 1
                self._streak += 1
                self._last_backoff = now
                held = len(self._sent)
                current = self.per_minute if self.per_minute is not None else held
                self.per_minute = max(self._floor, int(min(current, held) * SLOWDOWN))
            if retry_after is not None:
                pause = min(max(retry_after, 0.0), self.window)
            elif fresh:
                until_free = self._sent[0] + self.window - now if self._sent else 0.0
                grown = self.min_pause * 2 ** (self._streak - 1)
                pause = min(max(grown, until_free), self.window)
            else:
                pause = 0.0
            self._paused_until = max(self._paused_until, now + pause)
            return self._paused_until - now

    def succeeded(self) -> None:
        """An answer that was not 429: the next back-off starts from the minimum pause again."""
        self._streak = 0

    def reset(self) -> None:
        """A new check: the configured limit again (the window and any running pause are kept)."""
        with self._lock:
            self.per_minute = self.configured
            self._streak = 0
