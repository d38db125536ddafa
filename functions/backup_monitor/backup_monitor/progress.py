"""What a long check is doing, as one line on a terminal: `checking: 120/300 databases · 14 requests · waiting
12 s for Scalingo's rate limit`.

A check is given a `Progress` observer (no-op by default: the Lambda, cron, tests). The command gives a
`TerminalProgress` when standard error is a terminal: one line rewritten in place (carriage return, clear to
the end of the line), at most every `interval` seconds, erased before any log line or console message (they
go through `attached`), and erased for good at the end, before the summary. Thread-safe: the check's reads
report from its worker threads.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any, Protocol, TextIO

CLEAR = "\r\x1b[K"  # to the start of the line, erase it
INTERVAL_SECONDS = 0.25  # at most four updates a second
SCALINGO_RATE_LIMIT = "Scalingo's rate limit"


class Progress(Protocol):
    """The events of a check a progress display is told about (every method may be called from any thread)."""

    def apps_found(self, apps: int) -> None:
        """Discovery read an app list: `apps` apps whose addons it will list."""

    def app_listed(self) -> None:
        """Discovery listed one app's addons."""

    def reading(self, due: int) -> None:
        """The check reads `due` databases now (the due ones: cadence.py)."""

    def database_done(self) -> None:
        """One of them was read (or left)."""

    def request(self) -> None:
        """One Scalingo request is sent."""

    def waiting(self, seconds: float, why: str) -> None:
        """A worker waits `seconds` for a rate limit (`why`: whose)."""


class NoProgress:
    """Says nothing (the default)."""

    def apps_found(self, apps: int) -> None:
        pass

    def app_listed(self) -> None:
        pass

    def reading(self, due: int) -> None:
        pass

    def database_done(self) -> None:
        pass

    def request(self) -> None:
        pass

    def waiting(self, seconds: float, why: str) -> None:
        pass


NO_PROGRESS: Progress = NoProgress()


class TerminalProgress:
    """One line on a terminal, redrawn at most every `interval` seconds of `clock`."""

    def __init__(
        self,
        stream: TextIO,
        *,
        clock: Callable[[], float] = time.monotonic,
        interval: float = INTERVAL_SECONDS,
        width: Callable[[], int] | None = None,
    ) -> None:
        self._stream = stream
        self._clock = clock
        self._interval = interval
        self._width = width or (lambda: shutil.get_terminal_size((100, 24)).columns)
        self.lock = threading.RLock()  # held while anything is written to the terminal
        self._apps_total = 0
        self._apps_done = 0
        self._due: int | None = None
        self._done = 0
        self._requests = 0
        self._wait_until = 0.0
        self._wait_why = ""
        self._shown = ""  # what the line shows now ("" : nothing)
        self._drawn_at = float("-inf")
        self._mid_line = False  # someone else wrote part of a line: no drawing until its end
        self._closed = False

    # -- the observer ---------------------------------------------------------------------------------------

    def apps_found(self, apps: int) -> None:
        with self.lock:
            self._apps_total += apps
        self._update()

    def app_listed(self) -> None:
        with self.lock:
            self._apps_done += 1
        self._update()

    def reading(self, due: int) -> None:
        with self.lock:
            self._due, self._done = due, 0
        self._update(force=True)

    def database_done(self) -> None:
        with self.lock:
            self._done += 1
        self._update()

    def request(self) -> None:
        with self.lock:
            self._requests += 1
        self._update()

    def waiting(self, seconds: float, why: str) -> None:
        with self.lock:
            until = self._clock() + seconds
            if until > self._wait_until:
                self._wait_until, self._wait_why = until, why
        self._update(force=True)

    # -- the line -------------------------------------------------------------------------------------------

    def render(self) -> str:
        """The line as it would be drawn now."""
        with self.lock:
            if self._due is None:
                apps = f"{self._apps_done}/{self._apps_total}" if self._apps_total else f"{self._apps_done}"
                parts = [f"discovering: {apps} apps listed"]
            else:
                parts = [f"checking: {min(self._done, self._due)}/{self._due} databases"]
            parts.append(f"{self._requests} request{'' if self._requests == 1 else 's'}")
            left = self._wait_until - self._clock()
            if left > 0:
                parts.append(f"waiting {max(1, round(left))} s for {self._wait_why}")
            return " · ".join(parts)

    def tick(self) -> None:
        """Redraw if due (the countdown of a wait moves while every worker sleeps)."""
        self._update()

    def _update(self, *, force: bool = False) -> None:
        with self.lock:
            if self._closed or self._mid_line:
                return
            now = self._clock()
            if not force and now - self._drawn_at < self._interval:
                return
            line = self.render()[: max(10, self._width() - 1)]  # never wraps: \r could not erase it
            if line != self._shown:
                self._stream.write(CLEAR + line)
                self._stream.flush()
                self._shown = line
            self._drawn_at = now

    def erase(self) -> None:
        """Take the line off the terminal (it comes back at the next update)."""
        with self.lock:
            if self._shown:
                self._stream.write(CLEAR)
                self._stream.flush()
                self._shown = ""
            self._drawn_at = float("-inf")  # the next update draws at once

    def close(self) -> None:
        """Erase the line for good (before the summary)."""
        with self.lock:
            self.erase()
            self._closed = True

    def wrote(self, text: str) -> None:
        """Something else wrote `text` to the terminal (after `erase`): draw again only after a whole line."""
        with self.lock:
            if text:
                self._mid_line = not text.endswith("\n")


class _Guarded(logging.Handler):
    """A log handler whose records take the progress line off the terminal first."""

    def __init__(self, inner: logging.Handler, progress: TerminalProgress) -> None:
        super().__init__(inner.level)
        self.inner = inner
        self._progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        with self._progress.lock:
            self._progress.erase()
            self.inner.handle(record)
            self._progress.wrote("\n")


class GuardedStream:
    """A text stream (standard output on the same terminal) whose writes take the progress line off first."""

    def __init__(self, inner: TextIO, progress: TerminalProgress) -> None:
        self._inner = inner
        self._progress = progress

    def write(self, text: str) -> int:
        with self._progress.lock:
            self._progress.erase()
            written = self._inner.write(text)
            self._progress.wrote(text)
            return written

    def flush(self) -> None:
        self._inner.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def is_terminal(stream: IO[Any]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed, or no isatty
        return False


@contextmanager
def terminal_progress(
    stderr: TextIO, logger: logging.Logger, *, interval: float = INTERVAL_SECONDS
) -> Iterator[tuple[Progress, TextIO | None]]:
    """The progress line of one check on `stderr` when it is a terminal (NO_PROGRESS otherwise), with
    `logger`'s handlers guarded for the time of the check, and a ticker thread that keeps a wait's countdown
    moving. Yields the observer and, for console messages, a stream to print to instead of standard output
    when standard output is the same terminal (None: print as usual). The line is erased on exit."""
    if not is_terminal(stderr):
        yield NO_PROGRESS, None
        return
    import sys

    progress = TerminalProgress(stderr, interval=interval)
    handlers = list(logger.handlers)
    logger.handlers[:] = [_Guarded(h, progress) for h in handlers]
    stdout: TextIO | None = None
    if is_terminal(sys.stdout):
        stdout = GuardedStream(sys.stdout, progress)  # type: ignore[assignment]
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(interval):
            progress.tick()

    ticker = threading.Thread(target=tick, name="progress", daemon=True)
    ticker.start()
    try:
        yield progress, stdout
    finally:
        stop.set()
        ticker.join(timeout=2)
        progress.close()
        logger.handlers[:] = handlers
