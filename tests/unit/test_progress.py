"""The progress line: rendering, throttling on a fake clock, erasing around logs, silence off a terminal."""

from __future__ import annotations

import io
import logging
import threading

from backup_monitor.progress import CLEAR, NO_PROGRESS, SCALINGO_RATE_LIMIT, TerminalProgress, terminal_progress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def make(clock: Clock, width: int = 200) -> tuple[TerminalProgress, Terminal]:
    term = Terminal()
    return TerminalProgress(term, clock=clock, interval=0.25, width=lambda: width), term


def test_discovery_then_databases_then_a_wait() -> None:
    clock = Clock()
    progress, _ = make(clock)
    assert progress.render() == "discovering: 0 apps listed · 0 requests"
    progress.request()
    progress.apps_found(300)
    for _ in range(40):
        progress.app_listed()
    assert progress.render() == "discovering: 40/300 apps listed · 1 request"
    progress.reading(300)
    for _ in range(120):
        progress.database_done()
    for _ in range(13):
        progress.request()
    progress.waiting(12.2, SCALINGO_RATE_LIMIT)
    assert progress.render() == "checking: 120/300 databases · 14 requests · waiting 12 s for Scalingo's rate limit"
    clock.now += 5
    assert progress.render().endswith("waiting 7 s for Scalingo's rate limit")
    progress.waiting(1.0, SCALINGO_RATE_LIMIT)  # a shorter wait does not hide the longer one
    assert progress.render().endswith("waiting 7 s for Scalingo's rate limit")
    clock.now += 8
    assert progress.render() == "checking: 120/300 databases · 14 requests"


def test_redrawn_at_most_every_interval_and_only_when_changed() -> None:
    clock = Clock()
    progress, term = make(clock)
    progress.reading(10)  # forced: drawn at once
    assert term.getvalue() == CLEAR + "checking: 0/10 databases · 0 requests"
    progress.database_done()
    progress.database_done()
    clock.now += 0.1
    progress.database_done()
    assert term.getvalue().count(CLEAR) == 1, "within the interval: not redrawn"
    clock.now += 0.2
    progress.request()
    assert term.getvalue().endswith(CLEAR + "checking: 3/10 databases · 1 request")
    assert term.getvalue().count(CLEAR) == 2
    clock.now += 1
    progress.tick()  # nothing changed: nothing written
    assert term.getvalue().count(CLEAR) == 2


def test_never_wider_than_the_terminal() -> None:
    clock = Clock()
    progress, term = make(clock, width=30)
    progress.reading(300)
    line = term.getvalue().removeprefix(CLEAR)
    assert len(line) == 29
    assert "checking: 0/300 databases · 0 requests".startswith(line)


def test_erase_and_close() -> None:
    clock = Clock()
    progress, term = make(clock)
    progress.reading(2)
    progress.erase()
    assert term.getvalue().endswith("requests" + CLEAR)
    progress.database_done()  # drawn again at once after an erase
    assert term.getvalue().endswith(CLEAR + "checking: 1/2 databases · 0 requests")
    progress.close()
    before = term.getvalue()
    assert before.endswith(CLEAR)
    clock.now += 10
    progress.database_done()
    assert term.getvalue() == before, "nothing after close"


def test_a_partial_line_written_by_someone_else_holds_the_line_back() -> None:
    clock = Clock()
    progress, term = make(clock)
    progress.reading(2)
    progress.erase()
    progress.wrote("a message without its newline yet")
    progress.database_done()
    assert term.getvalue().count(CLEAR) == 2, "not drawn in the middle of another line"
    progress.wrote("\n")
    progress.database_done()
    assert term.getvalue().endswith(CLEAR + "checking: 2/2 databases · 0 requests")


def test_counts_from_many_threads() -> None:
    clock = Clock()
    progress, _ = make(clock)
    progress.reading(8000)

    def work() -> None:
        for _ in range(1000):
            progress.database_done()
            progress.request()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert progress.render() == "checking: 8000/8000 databases · 8000 requests"


def test_log_lines_erase_the_line_first_and_it_is_gone_at_the_end() -> None:
    term = Terminal()
    logger = logging.getLogger("test_progress_logs")
    handler = logging.StreamHandler(term)
    handler.setFormatter(logging.Formatter("log: %(message)s"))
    logger.handlers[:] = [handler]
    logger.propagate = False
    with terminal_progress(term, logger, interval=0.01) as (progress, stdout):
        assert stdout is None  # standard output is not a terminal under pytest
        progress.reading(5)
        progress.database_done()
        logger.warning("cannot check database")
        progress.database_done()
        assert isinstance(progress, TerminalProgress)
        progress.erase()  # (what a later update would have drawn, shown now)
        progress.database_done()
    assert logger.handlers == [handler], "the command's handler is put back"
    text = term.getvalue()
    before, after = text.split("log: cannot check database\n")
    assert before.startswith(CLEAR + "checking: 0/5 databases")
    assert before.endswith(" databases · 0 requests" + CLEAR), "the line is erased before the log"
    assert "checking: 3/5 databases" in after
    assert text.endswith(CLEAR), "erased at the end, before the summary"


def test_silent_when_not_a_terminal() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("test_progress_silent")
    with terminal_progress(stream, logger) as (progress, stdout):
        assert progress is NO_PROGRESS
        assert stdout is None
        progress.reading(3)
        progress.waiting(5, SCALINGO_RATE_LIMIT)
    assert stream.getvalue() == ""
