"""When the next message may go to each channel: Slack allows about one message a second per channel."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Pacer:
    """The earliest moment the next message may go to each channel (time.monotonic())."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._next: dict[str, float] = {}
        self._clock = clock
        self._lock = threading.Lock()

    def wait_for(self, channel: str) -> float:
        with self._lock:
            return max(0.0, self._next.get(channel, 0.0) - self._clock())

    def sent(self, channel: str, interval: float) -> None:
        with self._lock:
            self._next[channel] = max(self._next.get(channel, 0.0), self._clock() + interval)

    def hold(self, channel: str, seconds: float) -> None:
        """Slack asked to wait (Retry-After): nothing goes to `channel` before then."""
        with self._lock:
            self._next[channel] = max(self._next.get(channel, 0.0), self._clock() + seconds)
