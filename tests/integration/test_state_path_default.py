"""STATE_PATH unset: the state lives in the user's state directory, so `status` run from any directory finds
what `check` saved; a state file an older version left in the working directory is still used, with a warning.

The real command in a subprocess against the fake Scalingo, HOME in a temporary directory."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.fakes import FakeScalingo
from tests.integration.test_cli_errors import env_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake(fake_scalingo: FakeScalingo) -> FakeScalingo:
    fake_scalingo.add_database("shop", "ad-shop")
    now = datetime.fromtimestamp(fake_scalingo.clock(), UTC)
    fake_scalingo.add_backup("ad-shop", now.replace(hour=1, minute=0, second=0, microsecond=0) - timedelta(days=1))
    return fake_scalingo


def run(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("SCALINGO_", "SLACK_", "STATE_", "XDG_"))}
    full.update(env, PYTHONPATH=str(ROOT / "functions/backup_monitor"))
    return subprocess.run(
        [sys.executable, "-m", "backup_monitor.cli", *args],
        env=full,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_status_elsewhere_finds_the_state_of_check(fake: FakeScalingo, tmp_path: Path) -> None:
    home, here, there = tmp_path / "home", tmp_path / "here", tmp_path / "there"
    for folder in (home, here, there):
        folder.mkdir()
    env = env_for(fake, HOME=str(home))
    checked = run(env, here, "check")
    assert checked.returncode == 0, checked.stderr
    state = home / ".local" / "state" / "backup-monitor" / "state.sqlite3"
    assert state.is_file()
    assert stat.S_IMODE(state.parent.stat().st_mode) == 0o700  # the user's alone
    assert list(here.iterdir()) == []  # nothing left in the working directory
    shown = run(env, there, "status")
    assert shown.returncode == 0, shown.stderr
    assert "shop" in shown.stdout


def test_xdg_state_home_is_honoured(fake: FakeScalingo, tmp_path: Path) -> None:
    env = env_for(fake, HOME=str(tmp_path), XDG_STATE_HOME=str(tmp_path / "xdg"))
    assert run(env, tmp_path, "check").returncode == 0
    assert (tmp_path / "xdg" / "backup-monitor" / "state.sqlite3").is_file()


def test_an_older_versions_state_in_the_working_directory_is_kept(fake: FakeScalingo, tmp_path: Path) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = env_for(fake, HOME=str(home))
    first = run({**env, "STATE_PATH": "backup-monitor-state.sqlite3"}, work, "check")  # as the old default did
    assert first.returncode == 0, first.stderr
    again = run(env, work, "check")
    assert again.returncode == 0, again.stderr
    assert "STATE_PATH is unset: using" in again.stderr
    assert str(work / "backup-monitor-state.sqlite3") in again.stderr
    assert not (home / ".local" / "state" / "backup-monitor" / "state.sqlite3").exists()
    # the same database, already known: nothing announced as new
    assert "shop" in run(env, work, "status").stdout
