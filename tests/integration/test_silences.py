"""Silences and acknowledgments end to end: the real `backup-monitor silence` command in a subprocess, then real
checks over HTTP against the fake Scalingo API and the fake Slack, with SQLite and DynamoDB Local."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backup_monitor.config import Settings
from backup_monitor.monitor import Clients, run_check
from backup_monitor.notifiers import WebhookNotifier
from backup_monitor.scalingo.client import ScalingoClient, build_session
from backup_monitor.state.dynamodb import DynamoStateStore
from backup_monitor.state.silences import SILENCES_KEY, acknowledge_incident, add_silence, load_silences
from backup_monitor.state.sqlite import SqliteStateStore
from tests.fakes import FakeScalingo
from tests.fakes.slack import FakeSlack
from tests.integration.test_slack_delivery import settings_for as slack_settings_for

ROOT = Path(__file__).resolve().parents[2]
# The command stamps a silence with the real clock: the checks run on it too, moved forward to pass its end.
NOW = datetime.now(UTC).replace(microsecond=0)
KEY = "osc-fr1/ad-bill"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def settings_for(fake: FakeScalingo, **extra: str) -> Settings:
    """test_slack_delivery's settings, every database read at every check (the cadence is not under test)."""
    return slack_settings_for(fake, **{"SWEEP_EVERY_HOURS": "0", **extra})


def check(fake: FakeScalingo, slack: FakeSlack, path: Path, at: datetime) -> list[str]:
    """One check at `at`; the texts of the messages it posted."""
    settings = settings_for(fake)
    scalingo = ScalingoClient.from_settings(settings, session=build_session(retries=1, backoff_factor=0.01))
    before = len(slack.messages())
    summary = run_check(settings, Clients(scalingo, SqliteStateStore(path), WebhookNotifier(slack.webhook_url)), at)
    assert summary.exit_code == 0, summary.line()
    return [json.dumps(m, ensure_ascii=False) for m in slack.messages()[before:]]


def cli(*args: str, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCALINGO_", "SLACK_", "STATE_"))}
    env.update({"PYTHONPATH": str(ROOT / "functions/backup_monitor"), **env_extra})
    return subprocess.run(
        [sys.executable, "-m", "backup_monitor.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


def seeded(fake: FakeScalingo) -> None:
    """billing (silenced below) and shop (never silenced), each with a fresh usable backup."""
    for app, addon in (("billing", "ad-bill"), ("shop", "ad-shop")):
        fake.add_database(app, addon, scheduled_hours=[(NOW - timedelta(hours=1)).hour])
        fake.add_backup(addon, NOW - timedelta(hours=1), size=10**9)


def test_a_silence_from_the_command_line_mutes_the_database_and_what_is_open_is_announced_once_when_it_ends(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path
) -> None:
    # GIVEN two databases checked once, and `backup-monitor silence billing* --for 4h`
    state = tmp_path / "s.sqlite3"
    seeded(fake_scalingo)
    check(fake_scalingo, slack, state, NOW)
    done = cli("silence", "bill*", "--for", "4h", "--reason", "migration", STATE_PATH=str(state))
    assert done.returncode == 0, done.stderr
    silence_id = done.stdout.split()[1].rstrip(":")
    assert f"silence {silence_id}: bill* until " in done.stdout
    assert " UTC (4 h)" in done.stdout
    # WHEN a backup of each fails during the silence
    for addon in ("ad-bill", "ad-shop"):
        fake_scalingo.add_backup(addon, NOW + timedelta(minutes=30), "error", size=0)
    during = check(fake_scalingo, slack, state, NOW + timedelta(hours=1))
    # THEN only the database not silenced is announced; the silenced one's incident is in the state, unannounced
    assert len(during) == 1
    assert "shop" in during[0]
    assert "billing" not in during[0]
    record = SqliteStateStore(state).load_many([KEY])[KEY]
    assert record.incidents["failed"].unannounced
    # WHEN the silence has ended: the incident still open is announced once, as a first notice
    after = check(fake_scalingo, slack, state, NOW + timedelta(hours=5))
    assert len(after) == 1, after
    assert "Backup failed" in after[0]
    assert "billing" in after[0]
    assert "its database was silenced" in after[0]
    # AND not again at the next check
    assert check(fake_scalingo, slack, state, NOW + timedelta(hours=6)) == []
    assert not SqliteStateStore(state).load_many([KEY])[KEY].incidents["failed"].unannounced
    # AND the command lists the silence as expired with --all only
    listed = cli("silences", STATE_PATH=str(state))
    assert listed.returncode == 0
    assert silence_id in listed.stdout
    assert cli("unsilence", silence_id, STATE_PATH=str(state)).returncode == 0
    assert silence_id not in cli("silences", STATE_PATH=str(state)).stdout
    assert silence_id in cli("silences", "--all", STATE_PATH=str(state)).stdout


def test_an_incident_opened_and_resolved_during_a_silence_says_nothing(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path
) -> None:
    # GIVEN billing checked once, then silenced for 4 h
    state = tmp_path / "s.sqlite3"
    seeded(fake_scalingo)
    check(fake_scalingo, slack, state, NOW)
    assert cli("silence", "osc-fr1/billing", "--for", "4h", "--reason", "r", STATE_PATH=str(state)).returncode == 0
    # WHEN a backup fails, then a later one succeeds, both during the silence
    fake_scalingo.add_backup("ad-bill", NOW + timedelta(minutes=30), "error", size=0)
    assert check(fake_scalingo, slack, state, NOW + timedelta(hours=1)) == []
    assert "failed" in SqliteStateStore(state).load_many([KEY])[KEY].incidents  # tracked
    fake_scalingo.add_backup("ad-bill", NOW + timedelta(minutes=90), size=10**9)
    assert check(fake_scalingo, slack, state, NOW + timedelta(hours=2)) == []
    # THEN it is resolved in the state, and nothing about it is said when the silence ends
    assert SqliteStateStore(state).load_many([KEY])[KEY].incidents == {}
    assert check(fake_scalingo, slack, state, NOW + timedelta(hours=5)) == []


def test_an_incident_announced_before_a_silence_and_resolved_during_it_is_resolved_when_it_ends(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path
) -> None:
    state = tmp_path / "s.sqlite3"
    seeded(fake_scalingo)
    check(fake_scalingo, slack, state, NOW)
    fake_scalingo.add_backup("ad-bill", NOW + timedelta(minutes=10), "error", size=0)
    opened = check(fake_scalingo, slack, state, NOW + timedelta(minutes=20))
    assert len(opened) == 1
    assert "Backup failed" in opened[0]
    assert cli("silence", "billing", "--for", "4h", "--reason", "r", STATE_PATH=str(state)).returncode == 0
    fake_scalingo.add_backup("ad-bill", NOW + timedelta(minutes=40), size=10**9)
    assert check(fake_scalingo, slack, state, NOW + timedelta(hours=1)) == []
    record = SqliteStateStore(state).load_many([KEY])[KEY]
    assert record.incidents == {}
    assert "failed" in record.held
    after = check(fake_scalingo, slack, state, NOW + timedelta(hours=5))
    assert len(after) == 1
    assert "Resolved: backup failed" in after[0]
    assert check(fake_scalingo, slack, state, NOW + timedelta(hours=6)) == []


def test_an_acknowledged_incident_gets_no_reminder_but_its_resolution_names_who(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path
) -> None:
    # GIVEN a failed backup on each database, announced
    state = tmp_path / "s.sqlite3"
    seeded(fake_scalingo)
    check(fake_scalingo, slack, state, NOW)
    for addon in ("ad-bill", "ad-shop"):
        fake_scalingo.add_backup(addon, NOW + timedelta(minutes=10), "error", size=0)
    assert len(check(fake_scalingo, slack, state, NOW + timedelta(minutes=20))) == 2
    # WHEN billing's is acknowledged (what the Slack button calls), and REMIND_EVERY_HOURS (24) passes
    acknowledge_incident(SqliteStateStore(state), KEY, "failed", "U0ONCALL", NOW + timedelta(minutes=30))
    later = check(fake_scalingo, slack, state, NOW + timedelta(hours=25))
    # THEN only the other one is reminded
    assert len(later) == 1
    assert "Still open" in later[0]
    assert "shop" in later[0]
    # AND billing's resolution is posted, naming who acknowledged it
    fake_scalingo.add_backup("ad-bill", NOW + timedelta(hours=25, minutes=10), size=10**9)
    posted = check(fake_scalingo, slack, state, NOW + timedelta(hours=25, minutes=30))
    resolved = [m for m in posted if "Resolved: backup failed" in m]
    assert len(resolved) == 1
    assert "billing" in resolved[0]
    assert "Acknowledged by <@U0ONCALL>" in resolved[0]
    assert not any("Acknowledged" in m for m in posted if m not in resolved)


def test_unsilence_of_an_unknown_id_fails_naming_it(tmp_path: Path) -> None:
    state = str(tmp_path / "s.sqlite3")
    assert cli("silence", "x", "--for", "1h", "--reason", "r", STATE_PATH=state).returncode == 0
    result = cli("unsilence", "deadbeef", STATE_PATH=state)
    assert result.returncode == 1
    assert "'deadbeef'" in result.stderr
    assert cli("silence", "x", "--for", "31d", "--reason", "r", STATE_PATH=state).returncode == 2
    assert cli("silence", "x", "--for", "1h", "--reason", " ", STATE_PATH=state).returncode == 2
    for command in ("silence", "silences", "unsilence"):
        assert "exit status:" in cli(command, "--help").stdout


def test_two_concurrent_writers_of_the_silences_record_both_land_in_dynamodb(dynamodb_table: str) -> None:
    # GIVEN two writers (threads, each with its own client), each adding 15 silences at once
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        store = DynamoStateStore(dynamodb_table)
        start.wait()
        try:
            for n in range(15):
                add_silence(store, f"{name}-{n}", timedelta(hours=1), "maintenance", f"cli:{name}", NOW)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("alice", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # THEN none is lost
    assert errors == []
    stored = load_silences(DynamoStateStore(dynamodb_table))
    assert sorted(s.pattern for s in stored) == sorted(f"{n}-{i}" for n in ("alice", "bob") for i in range(15))
    assert DynamoStateStore(dynamodb_table).load_many([SILENCES_KEY])[SILENCES_KEY].version == 30


def test_the_command_works_against_dynamodb(dynamodb_table: str) -> None:
    done = cli("silence", "osc-fr1/ad-1", "--for", "2d", "--reason", "restore test", STATE_TABLE=dynamodb_table)
    assert done.returncode == 0, done.stderr
    listed = cli("silences", STATE_TABLE=dynamodb_table)
    assert "osc-fr1/ad-1" in listed.stdout
    assert "restore test" in listed.stdout
    stored = load_silences(DynamoStateStore(dynamodb_table))
    assert [s.pattern for s in stored] == ["osc-fr1/ad-1"]
    assert stored[0].by.startswith("cli:")
