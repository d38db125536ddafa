"""End to end over real HTTP: fake Scalingo, fake Slack, SQLite and DynamoDB Local; the real CLI too."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backup_monitor.config import Settings
from backup_monitor.demo import seed
from backup_monitor.monitor import Clients, run_check
from backup_monitor.notifiers import BotNotifier, WebhookNotifier
from backup_monitor.scalingo.client import ScalingoClient, build_session
from backup_monitor.state.base import StateStore
from backup_monitor.state.dynamodb import DynamoStateStore
from backup_monitor.state.sqlite import SqliteStateStore
from tests.fakes import FakeScalingo
from tests.fakes.slack import FakeSlack

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def fleet(fake_scalingo: FakeScalingo) -> FakeScalingo:
    seed(fake_scalingo, NOW)
    return fake_scalingo


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def env_for(fake: FakeScalingo, **extra: str) -> dict[str, str]:
    return {
        "SCALINGO_API_TOKEN": fake.api_token,
        "SCALINGO_AUTH_URL": fake.url,
        "SCALINGO_API_URL": fake.region_url(),
        "SCALINGO_DB_API_URL": fake.region_url(),
        "SCALINGO_API_RATE_LIMIT": "6000",
        "VERIFY_ARCHIVES_EVERY_DAYS": "0",  # archive verification has its own tests (test_archive_check.py)
        "DAILY_REPORT_AT": "",  # the daily report has its own tests (test_daily_report.py)
        **extra,
    }


def clients_for(settings: Settings, store: StateStore, notifier: WebhookNotifier | BotNotifier) -> Clients:
    scalingo = ScalingoClient.from_settings(settings, session=build_session(retries=1, backoff_factor=0.01))
    return Clients(scalingo, store, notifier)


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StateStore:
    if request.param == "sqlite":
        return SqliteStateStore(tmp_path / "state.sqlite3")
    return DynamoStateStore(request.getfixturevalue("dynamodb_table"))


def test_first_sight_then_a_quiet_check(fleet: FakeScalingo, slack: FakeSlack, store: StateStore) -> None:
    settings = Settings.from_env(env_for(fleet, SLACK_MENTION="<!here>"))
    clients = clients_for(settings, store, WebhookNotifier(slack.webhook_url))
    # GIVEN a fleet seen for the first time WHEN checked THEN every problem is announced once
    first = run_check(settings, clients, NOW)
    assert first.exit_code == 0
    texts = [m["text"] for m in slack.messages()]
    assert len(texts) == 9
    # One page per kind per check: billing's failure, and the first of the missing slots of analytics (hung
    # backup), blog (none) and crm (too small); the two others of that kind come without it. Billing's missing
    # slot is the same outage as its failure: no second page.
    assert sum("<!here>" in t for t in texts) == 2
    # titled by what is at the slot: nothing (blog, billing), a hung backup (analytics), a small one (crm)
    slots = ("Daily backup missing", "Daily backup stuck", "Daily backup too small")
    assert sum(t.startswith(slots) for t in texts) == 3  # billing, and two of the kind without the mention
    assert sum(t.removeprefix("<!here> ").startswith(slots) for t in texts) == 4
    assert not any(t.startswith("<!here> Daily backup missing: billing") for t in texts)
    assert any("new successful backups" in t for t in texts)
    # WHEN checked again THEN nothing is said and nothing is written
    store.writes = 0
    fleet.reset_requests()
    second = run_check(settings, clients, NOW + timedelta(minutes=15))
    assert (second.exit_code, second.sent, store.writes) == (0, 0, 0)
    assert len(slack.messages()) == 9
    assert fleet.count("main") == 0  # discovery cached, tokens reused, database info cached


def test_slack_failing_then_back_delivers_each_message_once(
    fleet: FakeScalingo, slack: FakeSlack, tmp_path: Path
) -> None:
    settings = Settings.from_env(env_for(fleet))
    clients = clients_for(settings, SqliteStateStore(tmp_path / "s.sqlite3"), WebhookNotifier(slack.webhook_url))
    # The first two messages fail even after their retries (3 tries each, paused inside the budget): Slack is
    # down, so the check stops sending and the rest goes at the next check.
    slack.fail_next(3 * 2, 500)
    first = run_check(settings, clients, NOW)
    assert first.exit_code == 1
    assert first.undelivered > 0
    delivered_first = len(slack.messages())
    second = run_check(settings, clients, NOW + timedelta(minutes=15))
    assert second.exit_code == 0
    third = run_check(settings, clients, NOW + timedelta(minutes=30))
    assert third.sent == 0
    titles = [m["text"] for m in slack.messages()]
    assert len(titles) == len(set(titles)) == 9
    assert delivered_first < 9


def test_a_permanent_slack_error_ends_the_check_with_one_clear_line(
    fleet: FakeScalingo, slack: FakeSlack, tmp_path: Path
) -> None:
    settings = Settings.from_env(env_for(fleet))
    notifier = WebhookNotifier(slack.url + "/services/T000/B000/revoked")
    summary = run_check(settings, clients_for(settings, SqliteStateStore(tmp_path / "s"), notifier), NOW)
    assert summary.exit_code == 1
    assert summary.error is None  # the check ran (the heartbeat counts it); Slack refused the destination
    assert summary.delivery_error is not None
    assert "no_service" in summary.delivery_error
    assert "no_service" in summary.line()
    assert len(slack.calls) == 1  # no retry storm


def test_bot_threads_reminders_and_edits_on_resolution(fleet: FakeScalingo, slack: FakeSlack, tmp_path: Path) -> None:
    settings = Settings.from_env(
        env_for(fleet, SLACK_BOT_TOKEN=slack.bot_token, SLACK_CHANNEL="C0BACKUPS", SUCCESS_NOTICES="off")
    )
    notifier = BotNotifier(slack.bot_token, "C0BACKUPS", base_url=slack.api_url)
    clients = clients_for(settings, SqliteStateStore(tmp_path / "s"), notifier)
    run_check(settings, clients, NOW)
    opened = {m["text"]: m for m in slack.messages()}
    failed_post = next(m for t, m in opened.items() if t.startswith("Backup failed: billing"))
    # GIVEN the failed billing backup WHEN a later backup succeeds THEN the resolution replies in its thread
    fleet.add_backup("ad-billing", NOW + timedelta(minutes=5), "done", size=400_000_000, method="manual")
    run_check(settings, clients, NOW + timedelta(minutes=15))
    resolutions = [m for m in slack.messages() if m["text"].startswith("Resolved: backup failed: billing")]
    assert len(resolutions) == 1
    resolution = resolutions[0]
    assert resolution["thread_ts"]
    assert slack.updates()
    assert resolution["thread_ts"] in {u["ts"] for u in slack.updates()}
    assert failed_post.get("thread_ts") is None


def run_cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("SCALINGO_", "SLACK_", "STATE_"))}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "backup_monitor.cli", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


def test_two_overlapping_checks_announce_once(fleet: FakeScalingo, slack: FakeSlack, tmp_path: Path) -> None:
    fleet.latency = 0.05
    env = env_for(fleet, SLACK_WEBHOOK_URL=slack.webhook_url, STATE_PATH=str(tmp_path / "shared.sqlite3"))
    env["PYTHONPATH"] = str(ROOT / "functions/backup_monitor")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "backup_monitor.cli", "check"],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    # the state's check lock turns the second away at once (75) when they overlap (test_check_lock.py)
    assert sorted(p.returncode for p in procs) in ([0, 0], [0, 75]), outputs
    titles = [m["text"] for m in slack.messages()]
    non_digest = [t for t in titles if "successful" not in t]
    assert sorted(non_digest) == sorted(set(non_digest))
    assert len(non_digest) == 8


def test_garbage_and_500_cost_only_their_databases(fleet: FakeScalingo, tmp_path: Path) -> None:
    fleet.fail("/api/databases/ad-blog/backups", 200, '{"database_backups": [{"id": 1}]}', times=99)
    fleet.fail("/api/databases/ad-crm/backups", 500, times=99)
    env = env_for(fleet, STATE_PATH=str(tmp_path / "s.sqlite3"), PYTHONPATH=str(ROOT / "functions/backup_monitor"))
    result = run_cli(env, "check")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert "4/6 databases checked" in result.stderr
    assert "could not check: blog/ad-blog, crm/ad-crm" in result.stderr
    assert "Backup failed on billing" in result.stdout


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("SCALINGO_API_TOKEN", "", "SCALINGO_API_TOKEN: is not set"),
        ("MAX_WORKERS", "lots", "MAX_WORKERS: must be a whole number"),
        ("SIZE_DROP_RATIO", "2", "SIZE_DROP_RATIO: must be at most 0.95"),
        ("MONITORED_DATABASES", "a/b/c/d", "MONITORED_DATABASES"),
        ("SUCCESS_NOTICES", "sometimes", "SUCCESS_NOTICES: must be one of"),
        ("SLACK_WEBHOOK_URL", "not a url secret-part", "SLACK_WEBHOOK_URL"),
    ],
)
def test_bad_configuration_exits_2_naming_the_variable(
    fake_scalingo: FakeScalingo, tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    env = env_for(fake_scalingo, STATE_PATH=str(tmp_path / "s"), PYTHONPATH=str(ROOT / "functions/backup_monitor"))
    env[variable] = value
    result = run_cli(env, "check")
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert "secret-part" not in result.stderr
    assert fake_scalingo.requests == []  # nothing contacted


def test_dry_run_prints_and_changes_nothing(fleet: FakeScalingo, slack: FakeSlack, tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    env = env_for(
        fleet,
        STATE_PATH=str(path),
        SLACK_WEBHOOK_URL=slack.webhook_url,
        PYTHONPATH=str(ROOT / "functions/backup_monitor"),
    )
    result = run_cli(env, "check", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "Backup failed on billing" in result.stdout
    assert "dry run" in result.stderr
    assert slack.calls == []
    assert SqliteStateStore(path).load_many(["osc-fr1/ad-billing"]) == {}


def test_no_secret_in_any_output(fleet: FakeScalingo, slack: FakeSlack, tmp_path: Path) -> None:
    env = env_for(
        fleet,
        STATE_PATH=str(tmp_path / "s"),
        SLACK_WEBHOOK_URL=slack.webhook_url,
        LOG_LEVEL="DEBUG",
        PYTHONPATH=str(ROOT / "functions/backup_monitor"),
    )
    slack.fail_next(2, 500)
    fleet.fail("/api/databases/ad-crm/backups", 401, times=5)
    result = run_cli(env, "check")
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert fleet.api_token not in output
    assert slack.webhook_path not in output
    assert "XXXXsecretXXXX" not in output
    for token in fleet._tokens:
        assert token not in output
    assert "token=dl-" not in result.stderr  # download links go to Slack, never to the logs
