"""The real `backup-monitor check` under a pseudo-terminal, against the fake Scalingo with latency: a progress
line on standard error, erased before the summary; the same run without a terminal prints none."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from backup_monitor.demo import seed
from backup_monitor.progress import CLEAR
from tests.fakes import FakeScalingo
from tests.support import processes

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC).replace(microsecond=0)


def command_env(fake: FakeScalingo, state: Path, rate: str = "6000") -> dict[str, str]:
    return processes.command_env(fake, state, SCALINGO_API_RATE_LIMIT=rate)


def run_on_terminal(env: dict[str, str], until: bytes | None = None, timeout: float = 60.0) -> tuple[int, str]:
    """`check --dry-run` with standard error on a pseudo-terminal; what it wrote there. With `until`: killed
    as soon as that appears."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "backup_monitor.cli", "check", "--dry-run"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
        cwd=ROOT,
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal (EIO)
                    break
                if not chunk:
                    break
                seen += chunk
                if until is not None and until in seen:
                    break
            elif proc.poll() is not None:
                break
    finally:
        if until is not None:
            proc.kill()
        code = proc.wait(timeout=30)
        os.close(master)
    return code, seen.decode()


def test_a_check_on_a_terminal_shows_its_progress_then_erases_it(fake_scalingo: FakeScalingo, tmp_path: Path) -> None:
    seed(fake_scalingo, NOW)
    fake_scalingo.latency = 0.1
    code, screen = run_on_terminal(command_env(fake_scalingo, tmp_path / "state.sqlite3"))
    assert code == 0, screen
    assert CLEAR + "discovering: " in screen
    # redrawn at most 4 times a second: which counts are drawn depends on the machine's speed, not their form
    assert re.search(re.escape(CLEAR) + r"checking: [0-6]/6 databases · \d+ requests", screen), screen
    summary = "backup-monitor: dry run: 6/6 databases checked"
    assert summary in screen
    # the summary starts a clean line: the progress line was erased just before it, and is not drawn again
    assert screen.split(summary)[0].endswith(CLEAR)
    assert "checking:" not in screen.split(summary)[1]


def test_a_rate_limit_wait_is_shown(fake_scalingo: FakeScalingo, tmp_path: Path) -> None:
    seed(fake_scalingo, NOW)
    env = command_env(fake_scalingo, tmp_path / "state.sqlite3", rate="5")  # 5 a minute: a wait at once
    _, screen = run_on_terminal(env, until=b"s for Scalingo's rate limit", timeout=30)
    assert "s for Scalingo's rate limit" in screen
    line = screen.rsplit(CLEAR, 1)[1]
    assert line.startswith(("discovering: ", "checking: "))
    waited = int(line.split("waiting ")[1].split(" s ")[0])
    assert 1 <= waited <= 60


def test_no_progress_line_without_a_terminal(fake_scalingo: FakeScalingo, tmp_path: Path) -> None:
    seed(fake_scalingo, NOW)
    fake_scalingo.latency = 0.1
    done = subprocess.run(
        [sys.executable, "-m", "backup_monitor.cli", "check", "--dry-run"],
        env=command_env(fake_scalingo, tmp_path / "state.sqlite3"),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "backup-monitor: dry run: 6/6 databases checked" in done.stderr
    assert "\x1b" not in done.stderr
    assert "\r" not in done.stderr
    assert "checking:" not in done.stderr
    assert "discovering:" not in done.stderr
