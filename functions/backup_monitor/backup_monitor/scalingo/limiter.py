"""A thread-safe sliding-window limiter: at most `per_minute` acquisitions in any 60 seconds."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

WINDOW_SECONDS = 60.0


class RateLimiter:
    """Blocks callers so the main API never sees more than its limit in one minute."""

    def __init__(
        self,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.per_minute = per_minute
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()
        self.waited_seconds = 0.0
        self.acquired = 0

    def acquire(self) -> None:
        """Wait until one more request fits in the window, then count it."""
        while True:
            with self._lock:
                now = self._clock()
                while self._sent and now - self._sent[0] >= WINDOW_SECONDS:
                    self._sent.popleft()
                if len(self._sent) < self.per_minute:
                    self._sent.append(now)
                    self.acquired += 1
                    return
                wait = WINDOW_SECONDS - (now - self._sent[0]) + 0.001
                self.waited_seconds += wait
            self._sleep(wait)
