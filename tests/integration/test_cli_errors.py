"""Every bad setting or state file: one line naming the variable, exit status 2, nothing contacted first.

The real command in a subprocess. As root a read-only file is still writable, so the runs that need one drop
the capability that lets root ignore file permissions (Linux); elsewhere they are skipped."""

from __future__ import annotations

import ctypes
import os
import socket
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backup_monitor.records import Record
from backup_monitor.state.sqlite import SqliteStateStore
from tests.conftest import NOW
from tests.fakes import FakeScalingo

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ["check", "status"]
PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2


def _drop_file_override() -> None:
    """In the child, before exec: without these capabilities root obeys file permissions like anyone."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _bound_by_permissions() -> Callable[[], None] | None:
    """What makes the command's subprocess obey file permissions (None: it already does)."""
    if os.geteuid() != 0:
        return None
    if not sys.platform.startswith("linux"):
        pytest.skip("root ignores file permissions and the capability cannot be dropped here")
    return _drop_file_override


def run_cli(
    env: dict[str, str], *args: str, preexec: Callable[[], None] | None = None, unset: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    full_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SCALINGO_", "SLACK_", "STATE_", "LOG_LEVEL")) and k not in unset
    }
    full_env.update(env, PYTHONPATH=str(ROOT / "functions/backup_monitor"))
    try:
        return subprocess.run(
            [sys.executable, "-m", "backup_monitor.cli", *args],
            env=full_env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            check=False,
            preexec_fn=preexec,  # the child only drops capabilities, then execs
        )
    except subprocess.SubprocessError as exc:
        pytest.skip(f"cannot run the command without root's file-permission override: {exc}")


def env_for(fake: FakeScalingo, **extra: str) -> dict[str, str]:
    return {
        "SCALINGO_API_TOKEN": fake.api_token,
        "SCALINGO_AUTH_URL": fake.url,
        "SCALINGO_API_URL": fake.region_url(),
        "SCALINGO_DB_API_URL": fake.region_url(),
        "MONITORED_DATABASES": "shop/ad-shop",
        "DAILY_REPORT_AT": "",
        "VERIFY_ARCHIVES_EVERY_DAYS": "0",
        **extra,
    }


def assert_one_line(result: subprocess.CompletedProcess[str], line: str) -> None:
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [line]
    assert result.stdout == ""
    assert result.returncode == 2


def a_state_file(path: Path) -> Path:
    """A real state file, as a check leaves it."""
    store = SqliteStateStore(path)
    store.save(Record(key="osc-fr1/ad-shop", first_seen_at=NOW), NOW.timestamp())
    return path


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory holding a state file, made read-only (restored after, so pytest can clean it up)."""
    directory = tmp_path / "ro"
    directory.mkdir()
    a_state_file(directory / "state.sqlite3")
    directory.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        yield directory
    finally:
        directory.chmod(stat.S_IRWXU)


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unknown_log_level_is_one_line(fake_scalingo: FakeScalingo, tmp_path: Path, command: str) -> None:
    env = env_for(fake_scalingo, STATE_PATH=str(a_state_file(tmp_path / "s.sqlite3")), LOG_LEVEL="verbose")
    result = run_cli(env, command)
    assert_one_line(
        result,
        "backup-monitor: configuration error: LOG_LEVEL: must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, "
        "got 'verbose'",
    )
    assert fake_scalingo.requests == []


def test_log_level_is_read_in_any_case(fake_scalingo: FakeScalingo, tmp_path: Path) -> None:
    env = env_for(fake_scalingo, STATE_PATH=str(a_state_file(tmp_path / "s.sqlite3")), LOG_LEVEL="info")
    result = run_cli(env, "status")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_a_state_path_in_a_missing_directory_is_one_line(
    fake_scalingo: FakeScalingo, tmp_path: Path, command: str
) -> None:
    path = tmp_path / "nowhere" / "state.sqlite3"
    result = run_cli(env_for(fake_scalingo, STATE_PATH=str(path)), command)
    start = "cannot create the state file" if command == "check" else "no state file at"
    assert_one_line(
        result, f"backup-monitor: configuration error: STATE_PATH: {start} {path}: no directory {path.parent}"
    )
    assert fake_scalingo.requests == []
    assert not path.parent.exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_a_state_path_that_is_not_sqlite_is_one_line(fake_scalingo: FakeScalingo, tmp_path: Path, command: str) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database, but someone's notes\n")
    result = run_cli(env_for(fake_scalingo, STATE_PATH=str(path)), command)
    assert_one_line(
        result,
        f"backup-monitor: configuration error: STATE_PATH: {path} is not an SQLite state file (file is not a database)",
    )
    assert fake_scalingo.requests == []
    assert path.read_text() == "not a database, but someone's notes\n"


@pytest.mark.parametrize("command", COMMANDS)
def test_a_state_path_that_is_a_directory_is_one_line(
    fake_scalingo: FakeScalingo, tmp_path: Path, command: str
) -> None:
    result = run_cli(env_for(fake_scalingo, STATE_PATH=str(tmp_path)), command)
    assert_one_line(
        result, f"backup-monitor: configuration error: STATE_PATH: {tmp_path} is a directory, not a state file"
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_a_read_only_state_file_is_one_line(fake_scalingo: FakeScalingo, tmp_path: Path, command: str) -> None:
    # GIVEN a state file a check wrote, then made read-only: SQLite opens it and would fail at the first write
    path = a_state_file(tmp_path / "state.sqlite3")
    path.chmod(stat.S_IRUSR)
    before = path.read_bytes()
    # WHEN the command runs THEN it stops at start, saying so in one line, and leaves the file as it was
    result = run_cli(env_for(fake_scalingo, STATE_PATH=str(path)), command, preexec=_bound_by_permissions())
    assert_one_line(
        result,
        f"backup-monitor: configuration error: STATE_PATH: the state file {path} cannot be written "
        "(a read-only file or directory)",
    )
    assert fake_scalingo.requests == []
    assert path.read_bytes() == before


def test_a_state_file_in_a_read_only_directory_is_one_line(fake_scalingo: FakeScalingo, read_only_dir: Path) -> None:
    path = read_only_dir / "state.sqlite3"
    result = run_cli(env_for(fake_scalingo, STATE_PATH=str(path)), "check", preexec=_bound_by_permissions())
    assert_one_line(
        result,
        f"backup-monitor: configuration error: STATE_PATH: the state file {path} cannot be written "
        "(a read-only file or directory)",
    )
    assert fake_scalingo.requests == []


def test_a_new_state_file_in_a_read_only_directory_is_one_line(
    fake_scalingo: FakeScalingo, read_only_dir: Path
) -> None:
    path = read_only_dir / "new.sqlite3"
    result = run_cli(env_for(fake_scalingo, STATE_PATH=str(path)), "check", preexec=_bound_by_permissions())
    assert_one_line(
        result,
        f"backup-monitor: configuration error: STATE_PATH: cannot create the state file {path}: Permission denied",
    )
    assert not path.exists()


def test_a_bad_state_file_is_said_before_ssm_is_asked_for_the_token(
    fake_scalingo: FakeScalingo, tmp_path: Path
) -> None:
    # GIVEN the API token in SSM, and an SSM endpoint on loopback that notes any connection
    with socket.socket() as ssm:
        ssm.bind(("127.0.0.1", 0))
        ssm.listen(8)
        ssm.setblocking(False)
        env = env_for(
            fake_scalingo,
            STATE_PATH=str(tmp_path / "nowhere" / "state.sqlite3"),
            SCALINGO_API_TOKEN="",
            SCALINGO_API_TOKEN_PARAMETER="/backup-monitor/api-token",
            AWS_ENDPOINT_URL_SSM=f"http://127.0.0.1:{ssm.getsockname()[1]}",
            AWS_ACCESS_KEY_ID="test",
            AWS_SECRET_ACCESS_KEY="test",
            AWS_DEFAULT_REGION="eu-west-3",
        )
        # WHEN the check runs with a STATE_PATH that cannot be used THEN it says so, and never reached SSM
        result = run_cli(env, "check")
        assert result.returncode == 2
        assert result.stderr.startswith("backup-monitor: configuration error: STATE_PATH: ")
        with pytest.raises(BlockingIOError):
            ssm.accept()
    assert fake_scalingo.requests == []


@pytest.mark.parametrize("command", COMMANDS)
def test_a_state_table_without_an_aws_region_is_one_line(
    fake_scalingo: FakeScalingo, tmp_path: Path, command: str
) -> None:
    env = env_for(fake_scalingo, STATE_TABLE="backup-monitor-state")
    env.update(AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    result = run_cli(env, command, unset=("AWS_REGION", "AWS_DEFAULT_REGION"))
    assert_one_line(
        result,
        "backup-monitor: configuration error: STATE_TABLE: cannot set up a DynamoDB client: You must specify a region.",
    )
    assert fake_scalingo.requests == []


def test_the_store_check_leaves_no_trace_in_a_good_state_file(tmp_path: Path) -> None:
    # The write probe is rolled back: no table of its own, the records as they were.
    path = a_state_file(tmp_path / "state.sqlite3")
    SqliteStateStore(path)
    with sqlite3.connect(path) as conn:
        tables = sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
    conn.close()
    assert tables == ["blobs", "records"]
