"""A check can be cut at any instant (issue 16): `kill -9` at random moments, round after round, then a clean
check. Nothing is lost, and each kill repeats at most the one message that was in flight. Also: one corrupt
state record costs only its database, on SQLite and on DynamoDB Local. Real parts over loopback."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backup_monitor.config import Settings
from backup_monitor.monitor import Clients, run_check
from backup_monitor.notifiers import WebhookNotifier
from backup_monitor.scalingo.client import ScalingoClient, build_session
from backup_monitor.state.base import StateStore
from backup_monitor.state.dynamodb import DynamoStateStore
from backup_monitor.state.sqlite import SqliteStateStore
from tests.fakes import FakeScalingo
from tests.fakes.slack import FakeSlack
from tests.support.processes import clean_env, scalingo_env

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC).replace(microsecond=0)
ROUNDS = 20


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(rate_per_channel=1.0) as fake:
        yield fake


def env_for(fake: FakeScalingo, slack: FakeSlack, path: Path) -> dict[str, str]:
    return {
        **scalingo_env(fake),
        "SCALINGO_API_RATE_LIMIT": "60000",
        "SLACK_WEBHOOK_URL": slack.webhook_url,
        "STATE_PATH": str(path),
        "SUCCESS_NOTICES": "each",
        "DOWNLOAD_LINKS": "false",
        "VERIFY_ARCHIVES_EVERY_DAYS": "0",
        "DAILY_REPORT_AT": "",
        "SWEEP_EVERY_HOURS": "0",  # every database at every check (the cadence has its own tests)
        "GROUP_WAIT_SECONDS": "0",
    }


def expire_claims(path: Path) -> None:
    """What waiting out a dead check's claims (5 minutes for a command) does, without the wait."""
    import sqlite3

    if path.exists():
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE records SET claim_expires_at = 0 WHERE claim_owner IS NOT NULL")


def announced(slack: FakeSlack, name: str) -> int:
    return sum(f"`{name}`" in json.dumps(m) for m in slack.messages())


def test_kill_9_at_random_moments_loses_nothing_and_repeats_at_most_one_message_per_kill(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path
) -> None:
    rng = random.Random(20261201)  # reproducible moments
    for i in range(6):
        fake_scalingo.add_database(f"db-{i}", f"ad-db-{i}", scheduled_hours=[])
    names: list[str] = []
    env = {**clean_env(), **env_for(fake_scalingo, slack, tmp_path / "s.sqlite3")}
    env["PYTHONPATH"] = str(ROOT / "functions/backup_monitor")
    kills = 0
    for round_ in range(ROUNDS):
        # GIVEN new backups to announce (one message each, one a second)
        for _ in range(2):
            i = rng.randrange(6)
            name = f"round-{round_:02d}-db-{i}-{len(names)}"
            fake_scalingo.add_backup(f"ad-db-{i}", NOW - timedelta(minutes=30), size=10_000_000, name=name)
            names.append(name)
        # WHEN a check is killed at a random moment (or ends first)
        proc = subprocess.Popen(
            [sys.executable, "-m", "backup_monitor.cli", "check"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.3, 2.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=30)
        expire_claims(tmp_path / "s.sqlite3")
    # THEN a clean check, once the dead checks' claims have expired, announces everything left
    settings = Settings.from_env(env_for(fake_scalingo, slack, tmp_path / "s.sqlite3"))
    scalingo = ScalingoClient.from_settings(settings, session=build_session(retries=1, backoff_factor=0.01))
    store = SqliteStateStore(tmp_path / "s.sqlite3")
    clients = Clients(scalingo, store, WebhookNotifier(slack.webhook_url))
    final = run_check(settings, clients, NOW + timedelta(minutes=10))
    assert final.exit_code == 0, final.line()
    counts = {name: announced(slack, name) for name in names}
    assert kills >= 10  # most rounds were cut
    assert [n for n, c in counts.items() if c == 0] == []  # lost: 0
    repeated = sum(c - 1 for c in counts.values())
    assert repeated <= kills, (repeated, kills)
    # AND the state is sound: a further check has nothing to say
    again = run_check(settings, clients, NOW + timedelta(minutes=25))
    assert (again.exit_code, again.sent) == (0, 0)


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StateStore:
    if request.param == "sqlite":
        return SqliteStateStore(tmp_path / "state.sqlite3")
    return DynamoStateStore(request.getfixturevalue("dynamodb_table"))


def corrupt(store: StateStore, key: str) -> str:
    """Break one record's JSON in place; returns its raw data as it is now."""
    if isinstance(store, SqliteStateStore):
        import sqlite3

        with sqlite3.connect(store.path) as conn:
            conn.execute("UPDATE records SET data = ? WHERE pk = ?", ('{"handled": {', key))
        return '{"handled": {'
    import boto3

    assert isinstance(store, DynamoStateStore)
    client = boto3.client("dynamodb")
    client.update_item(
        TableName=store.table,
        Key={"pk": {"S": key}},
        UpdateExpression="SET #d = :d",
        ExpressionAttributeNames={"#d": "data"},
        ExpressionAttributeValues={":d": {"S": '{"handled": {'}},
    )
    return '{"handled": {'


def raw(store: StateStore, key: str) -> str:
    if isinstance(store, SqliteStateStore):
        import sqlite3

        with sqlite3.connect(store.path) as conn:
            return str(conn.execute("SELECT data FROM records WHERE pk = ?", (key,)).fetchone()[0])
    import boto3

    assert isinstance(store, DynamoStateStore)
    item = boto3.client("dynamodb").get_item(TableName=store.table, Key={"pk": {"S": key}})["Item"]
    return str(item["data"]["S"])


def test_one_corrupt_record_costs_only_its_database(
    fake_scalingo: FakeScalingo, slack: FakeSlack, store: StateStore
) -> None:
    for app in ("alpha", "beta", "gamma"):
        fake_scalingo.add_database(app, f"ad-{app}", scheduled_hours=[])
        fake_scalingo.add_backup(f"ad-{app}", NOW - timedelta(hours=20), size=10_000_000)
    env = env_for(fake_scalingo, slack, Path("unused"))
    env.pop("STATE_PATH")
    env["SUCCESS_NOTICES"] = "off"
    settings = Settings.from_env(env)
    scalingo = ScalingoClient.from_settings(settings, session=build_session(retries=1, backoff_factor=0.01))
    clients = Clients(scalingo, store, WebhookNotifier(slack.webhook_url))
    run_check(settings, clients, NOW)
    # GIVEN beta's record broken, and new failures on alpha and gamma
    broken = corrupt(store, "osc-fr1/ad-beta")
    for app in ("alpha", "gamma"):
        fake_scalingo.add_backup(f"ad-{app}", NOW + timedelta(minutes=5), "error", size=None)
    # WHEN checked twice
    first = run_check(settings, clients, NOW + timedelta(minutes=15))
    second = run_check(settings, clients, NOW + timedelta(minutes=30))
    # THEN alpha and gamma are announced, beta is one "cannot check" naming its record, said once
    texts = [m["text"] for m in slack.messages()]
    assert any(t.startswith("Backup failed: alpha/") for t in texts)
    assert any(t.startswith("Backup failed: gamma/") for t in texts)
    cannot = [m for m in slack.messages() if m["text"].startswith("Cannot check backups: beta")]
    assert len(cannot) == 1
    assert "osc-fr1/ad-beta" in json.dumps(cannot[0])
    assert (first.checked, first.unchecked) == (2, ["beta/ad-beta"])
    assert first.exit_code == 1
    assert second.sent == 0
    # AND the broken record was left exactly as it was
    assert raw(store, "osc-fr1/ad-beta") == broken
