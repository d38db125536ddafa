"""One check at a time on one SQLite state: two real processes, the second refused at once (exit 75)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backup_monitor.cli import EXIT_BUSY
from backup_monitor.demo import seed
from backup_monitor.state.sqlite import CheckRunningError, check_lock, lock_path
from tests.fakes import FakeScalingo
from tests.fakes.slack import FakeSlack
from tests.support import processes

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC).replace(microsecond=0)


def command_env(fake: FakeScalingo, slack: FakeSlack, state: Path) -> dict[str, str]:
    return processes.command_env(fake, state, SLACK_WEBHOOK_URL=slack.webhook_url)


def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "backup_monitor.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def wait_for_holder(lock: Path, proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    """Until the lock file names `proc` (it holds the lock), or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lock.exists() and lock.read_text().strip() == str(proc.pid):
            return
        if proc.poll() is not None:
            pytest.fail(f"the first check ended before it was seen holding the lock: {proc.communicate()}")
        time.sleep(0.02)
    pytest.fail("the first check never held the lock")


def test_a_second_check_on_the_same_state_exits_75_at_once(fake_scalingo: FakeScalingo, tmp_path: Path) -> None:
    seed(fake_scalingo, NOW)
    fake_scalingo.latency = 0.25  # the first check lasts seconds: the second starts while it runs
    state = tmp_path / "state.sqlite3"
    with FakeSlack() as slack:
        env = command_env(fake_scalingo, slack, state)
        first = start(env, "check")
        wait_for_holder(Path(lock_path(str(state))), first)
        began = time.monotonic()
        second = subprocess.run(
            [sys.executable, "-m", "backup_monitor.cli", "check"],
            env=env,
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
        took = time.monotonic() - began
        # `status` reads the state while the check runs: it takes no lock
        status = subprocess.run(
            [sys.executable, "-m", "backup_monitor.cli", "status"],
            env=env,
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
        assert first.poll() is None, "the first check should still be running (raise the fake's latency)"
        _, err = first.communicate(timeout=120)
        third = subprocess.run(  # the lock is released with the first check
            [sys.executable, "-m", "backup_monitor.cli", "check"],
            env=env,
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
            check=False,
        )

    assert second.returncode == EXIT_BUSY == 75, second.stderr
    assert (
        second.stderr
        == f"backup-monitor: another check is running on {state} (pid {first.pid}); this one did nothing\n"
    )
    assert second.stdout == ""
    assert took < 10, "refused at once, not after waiting for the lock"
    # `status` read the state (nothing saved yet by the running first check) instead of being refused
    assert "no database known yet" in status.stderr, status.stderr
    assert "another check" not in status.stderr
    assert first.returncode == 0, err
    assert "databases checked" in err
    assert third.returncode == 0, third.stderr
    assert "databases checked" in third.stderr


def test_the_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    state = str(tmp_path / "state.sqlite3")
    with check_lock(state):
        assert Path(lock_path(state)).read_text() == f"{os.getpid()}\n"
        # another open file description, even in this process: refused, naming the holder
        with pytest.raises(CheckRunningError) as refused, check_lock(state):
            pass
        assert refused.value.pid == os.getpid()
        assert str(refused.value) == f"another check is running on {state} (pid {os.getpid()}); this one did nothing"
    assert Path(lock_path(state)).read_text() == ""
    with check_lock(state):  # free again
        pass


def test_a_lock_held_by_flock_1_is_seen(tmp_path: Path) -> None:
    """The lock is flock(2): what the flock(1) command takes too (cron's `flock -n`), and without a pid."""
    state = str(tmp_path / "state.sqlite3")
    if not Path("/usr/bin/flock").exists():
        pytest.skip("no flock(1) here")
    holder = subprocess.Popen(["/usr/bin/flock", "-n", lock_path(state), "sleep", "30"])
    try:
        deadline = time.monotonic() + 10
        while not Path(lock_path(state)).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        with pytest.raises(CheckRunningError) as refused, check_lock(state):
            pass
        assert refused.value.pid is None
        assert str(refused.value) == f"another check is running on {state}; this one did nothing"
    finally:
        holder.kill()
        holder.wait()
