"""The worst night (issue 15): a storm of failures, Slack's rate limits, checks cut short or overlapping, an API
outage, an archived thread, a huge daily report. Real parts over loopback: the fake Scalingo API, a fake Slack
that enforces one message a second per channel with 429 + Retry-After, SQLite and DynamoDB Local."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backup_monitor.cli import EXIT_BUSY
from backup_monitor.config import Settings
from backup_monitor.monitor import Clients, run_check
from backup_monitor.notifiers import BotNotifier, Notifier, WebhookNotifier
from backup_monitor.records import Incident, Record, ThreadRef
from backup_monitor.scalingo.client import ScalingoClient, build_session
from backup_monitor.state.base import StateStore
from backup_monitor.state.dynamodb import DynamoStateStore
from backup_monitor.state.sqlite import SqliteStateStore
from tests.fakes import FakeScalingo
from tests.fakes.slack import FakeSlack, wait_until
from tests.support.processes import clean_env, scalingo_env

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC).replace(microsecond=0)
CHANNEL = "C0BACKUPS"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(rate_per_channel=1.0) as fake:  # Slack's documented limit, enforced
        yield fake


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StateStore:
    if request.param == "sqlite":
        return SqliteStateStore(tmp_path / "state.sqlite3")
    return DynamoStateStore(request.getfixturevalue("dynamodb_table"))


def seed_failures(fake: FakeScalingo, count: int, prefix: str = "app") -> list[str]:
    """`count` databases, each with a week of good backups and a failed one two hours ago."""
    slot = (NOW - timedelta(hours=2)).replace(minute=0, second=0)
    apps = []
    for i in range(count):
        app, addon = f"{prefix}-{i:04d}", f"ad-{prefix}-{i:04d}"
        fake.add_database(app, addon, scheduled_hours=[slot.hour])
        for day in range(7, 0, -1):
            fake.add_backup(addon, slot - timedelta(days=day), size=10_000_000)
        fake.add_backup(addon, slot, "error", size=None)
        apps.append(app)
    return apps


def env_for(fake: FakeScalingo, **extra: str) -> dict[str, str]:
    return {
        **scalingo_env(fake),
        "SCALINGO_API_RATE_LIMIT": "60000",
        "SLACK_MENTION": "<!here>",
        "SUCCESS_NOTICES": "off",
        "MISSING_BACKUP_GRACE_HOURS": "12",  # the failed slot does not also turn "missing" while tests run
        "VERIFY_ARCHIVES_EVERY_DAYS": "0",
        "DAILY_REPORT_AT": "",
        "SWEEP_EVERY_HOURS": "0",  # every database at every check (the cadence has its own tests)
        "GROUP_WAIT_SECONDS": "2",
        "MAX_WORKERS": "16",
        **extra,
    }


def clients_for(settings: Settings, store: StateStore, notifier: Notifier) -> Clients:
    scalingo = ScalingoClient.from_settings(settings, session=build_session(retries=1, backoff_factor=0.01))
    return Clients(scalingo, store, notifier)


def notifier_for(slack: FakeSlack, kind: str) -> Notifier:
    if kind == "bot":
        return BotNotifier(slack.bot_token, CHANNEL, base_url=slack.api_url)
    return WebhookNotifier(slack.webhook_url)


def named(slack: FakeSlack, app: str) -> int:
    """In how many accepted messages `app` is named."""
    return sum(f"*{app}*" in json.dumps(m) for m in slack.messages())


def run_cli(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    full = {**clean_env(), **env, "PYTHONPATH": str(ROOT / "functions/backup_monitor")}
    return subprocess.Popen(
        [sys.executable, "-m", "backup_monitor.cli", *args],
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# -- a storm: one page, every database named, Slack's limit respected ------------------------------------------


@pytest.mark.parametrize("kind", ["webhook", "bot"])
def test_three_hundred_failures_are_one_page_naming_every_database(
    fake_scalingo: FakeScalingo, slack: FakeSlack, store: StateStore, kind: str
) -> None:
    # GIVEN 300 databases whose backups failed the same night
    apps = seed_failures(fake_scalingo, 300)
    env = env_for(fake_scalingo)
    if kind == "bot":
        env |= {"SLACK_BOT_TOKEN": slack.bot_token, "SLACK_CHANNEL": CHANNEL}
    settings = Settings.from_env(env)
    # WHEN one check runs
    summary = run_check(settings, clients_for(settings, store, notifier_for(slack, kind)), NOW)
    # THEN at most 3 mentions, fewer than 20 messages, every database named once, hardly any 429
    assert summary.exit_code == 0, summary.line()
    assert slack.mentions() <= 3
    assert len(slack.messages()) < 20
    assert all(named(slack, app) == 1 for app in apps)
    assert slack.rate_limited() <= 5
    assert summary.findings["failed"] == 300
    # AND each database has its own incident, which the next check does not announce again
    again = run_check(settings, clients_for(settings, store, notifier_for(slack, kind)), NOW + timedelta(minutes=15))
    assert (again.exit_code, again.sent) == (0, 0)


def test_a_storm_of_resolutions_is_grouped_too(fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path) -> None:
    apps = seed_failures(fake_scalingo, 40)
    settings = Settings.from_env(env_for(fake_scalingo))
    store = SqliteStateStore(tmp_path / "s.sqlite3")
    run_check(settings, clients_for(settings, store, notifier_for(slack, "webhook")), NOW)
    before = len(slack.messages())
    # GIVEN every database made a good manual backup WHEN checked THEN one grouped "resolved" names them all
    for app in apps:
        fake_scalingo.add_backup(f"ad-{app}", NOW - timedelta(minutes=30), size=10_000_000, method="manual")
    summary = run_check(
        settings, clients_for(settings, store, notifier_for(slack, "webhook")), NOW + timedelta(hours=1)
    )
    resolved = slack.messages()[before:]
    assert summary.exit_code == 0, summary.line()
    assert len(resolved) <= 2
    assert resolved[0]["text"].startswith("Resolved: backup failed on 40 databases")
    assert all(sum(f"*{app}*" in json.dumps(m) for m in resolved) == 1 for app in apps)


# -- cut short, overlapping -----------------------------------------------------------------------------------------


def test_a_check_killed_during_delivery_repeats_at_most_one_message(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path
) -> None:
    # GIVEN ten databases with one new success each, announced one message each (paced: one a second)
    now = datetime.now(UTC).replace(microsecond=0)  # the command runs on the real clock
    for i in range(10):
        fake_scalingo.add_database(f"db-{i}", f"ad-db-{i}", scheduled_hours=[])
        fake_scalingo.add_backup(f"ad-db-{i}", now - timedelta(hours=1), size=10_000_000, name=f"backup-of-db-{i}")
    env = env_for(
        fake_scalingo,
        SUCCESS_NOTICES="each",
        DOWNLOAD_LINKS="false",
        SLACK_WEBHOOK_URL=slack.webhook_url,
        STATE_PATH=str(tmp_path / "s.sqlite3"),
        GROUP_WAIT_SECONDS="0",
    )
    # WHEN the check is killed (SIGKILL: no cleanup at all) after its fourth message
    proc = run_cli(env, "check")
    assert wait_until(lambda: len(slack.messages()) >= 4, timeout=60)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    # AND a check runs once the dead check's claims have expired (a command's claims last 5 minutes)
    settings = Settings.from_env(env)
    store = SqliteStateStore(tmp_path / "s.sqlite3")
    after_claims = datetime.now(UTC) + timedelta(minutes=10)  # the command ran on the real clock
    later = run_check(settings, clients_for(settings, store, WebhookNotifier(slack.webhook_url)), after_claims)
    assert later.exit_code == 0, later.line()
    # THEN every backup was announced, and at most one of them twice (the one in flight when killed)
    counts = [sum(f"backup-of-db-{i}`" in json.dumps(m) for m in slack.messages()) for i in range(10)]
    assert all(c >= 1 for c in counts), (counts, later.line())
    assert sum(c - 1 for c in counts) <= 1, counts


def test_two_overlapping_checks_over_a_storm_post_nothing_twice(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path
) -> None:
    apps = seed_failures(fake_scalingo, 250)
    env = env_for(fake_scalingo, SLACK_WEBHOOK_URL=slack.webhook_url, STATE_PATH=str(tmp_path / "s.sqlite3"))
    # WHEN two checks start together (cron overlapping)
    procs = [run_cli(env, "check") for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    # (both post to one channel: Slack's limit may leave some messages to the next check, exit status 1)
    # the state's lock may turn one of them away at once (exit 75, nothing done): the other does the work
    assert all(p.returncode in (0, 1, EXIT_BUSY) for p in procs), outputs
    assert any(p.returncode != EXIT_BUSY for p in procs), outputs
    assert all("Traceback" not in err for _, err in outputs)
    # AND a later check delivers what they left
    settings = Settings.from_env(env)
    store = SqliteStateStore(tmp_path / "s.sqlite3")
    after_claims = datetime.now(UTC) + timedelta(minutes=10)  # the commands ran on the real clock
    later = run_check(settings, clients_for(settings, store, notifier_for(slack, "webhook")), after_claims)
    assert later.exit_code == 0, later.line()
    # THEN each database is named exactly once, whichever check announced it
    assert all(named(slack, app) == 1 for app in apps), [a for a in apps if named(slack, a) != 1][:5]
    assert slack.mentions() <= 2


# -- Slack's limits inside the budget ------------------------------------------------------------------------------


def test_retry_after_30_with_a_60_second_budget_ends_in_time_and_later_checks_deliver_the_rest(
    fake_scalingo: FakeScalingo, tmp_path: Path
) -> None:
    # GIVEN twelve new successes announced one message each, and a Slack that answers 429 + Retry-After: 30
    for i in range(12):
        fake_scalingo.add_database(f"db-{i}", f"ad-db-{i}", scheduled_hours=[])
        fake_scalingo.add_backup(f"ad-db-{i}", NOW - timedelta(hours=1), size=10_000_000, name=f"backup-of-db-{i}")
    settings = Settings.from_env(
        env_for(fake_scalingo, SUCCESS_NOTICES="each", DOWNLOAD_LINKS="false", CHECK_TIME_LIMIT_SECONDS="60")
    )
    store = SqliteStateStore(tmp_path / "s.sqlite3")
    with FakeSlack(rate_per_channel=1.0, retry_after=30) as slack:
        notifier = WebhookNotifier(slack.webhook_url)  # one per process: its pacing spans checks
        slack.fail_next(1, 429, "rate_limited")  # the first post is refused: wait 30 s (it fits), go on
        started = time.monotonic()
        first = run_check(settings, clients_for(settings, store, notifier), NOW)
        elapsed = time.monotonic() - started
        # THEN the check waited once, then delivered within its budget (or left the rest), never past it
        assert elapsed < 60 + 10, elapsed
        assert first.rate_limited >= 1
        delivered = len(slack.messages())
        assert delivered >= 1
        # WHEN Slack refuses again with 30 s to wait and 25 s left THEN sending stops, the rest goes next time
        slack.fail_next(1, 429, "rate_limited")
        for i in range(12):  # a second new backup on each database
            fake_scalingo.add_backup(f"ad-db-{i}", NOW, size=10_000_000, name=f"backup-of-db-{i + 12}")
        short = replace(settings, check_time_limit=25.0)
        started = time.monotonic()
        second = run_check(short, clients_for(short, store, notifier), NOW + timedelta(minutes=15))
        assert time.monotonic() - started < 25 + 10
        assert second.out_of_time
        assert second.exit_code == 1  # something is undelivered: said, retried next check
        # AND the following checks deliver everything, each backup exactly once
        for minutes in (30, 45, 60):
            run_check(settings, clients_for(settings, store, notifier), NOW + timedelta(minutes=minutes))
        counts = [sum(f"backup-of-db-{i}`" in json.dumps(m) for m in slack.messages()) for i in range(24)]
        assert counts == [1] * 24, counts


# -- one refused thread, one outage -------------------------------------------------------------------------------


def test_an_archived_thread_channel_does_not_hold_back_a_new_alert(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path
) -> None:
    # GIVEN an old incident whose thread is in a channel since archived, with a reminder due
    fake_scalingo.add_database("old", "ad-old", scheduled_hours=[])
    fake_scalingo.add_backup("ad-old", NOW - timedelta(days=3), "error", size=None)
    settings = Settings.from_env(
        env_for(fake_scalingo, SLACK_BOT_TOKEN=slack.bot_token, SLACK_CHANNEL=CHANNEL, LOOKBACK_HOURS="100")
    )
    store = SqliteStateStore(tmp_path / "s.sqlite3")
    bot = BotNotifier(slack.bot_token, CHANNEL, base_url=slack.api_url)
    run_check(settings, clients_for(settings, store, bot), NOW - timedelta(days=2))
    key = "osc-fr1/ad-old"
    record = store.load_many([key])[key]
    failed = record.incidents["failed"]
    moved = replace(failed, thread=ThreadRef("C0ARCHIVED", "1700000000.000001"))
    store.save(replace(record, incidents={"failed": moved}), NOW.timestamp())
    slack.archived.add("C0ARCHIVED")
    # AND a new failure on another database
    fake_scalingo.add_database("new", "ad-new", scheduled_hours=[])
    fake_scalingo.add_backup("ad-new", NOW - timedelta(hours=1), "error", size=None)
    before = len(slack.messages())
    # WHEN checked
    summary = run_check(settings, clients_for(settings, store, bot), NOW)
    # THEN the new alert went out, and the reminder too, top-level in the configured channel
    posted = slack.messages()[before:]
    assert summary.exit_code == 0, summary.line()
    assert any(m["text"].startswith("<!here> Backup failed: new/") for m in posted)
    reminder = next(m for m in posted if m["text"].startswith("Still open: backup failed: old/"))
    assert reminder["channel"] == CHANNEL
    assert "thread_ts" not in reminder
    # AND the incident continues there (its next reply goes to the new message)
    thread = store.load_many([key])[key].incidents["failed"].thread
    assert thread is not None
    assert thread.channel == CHANNEL
    assert thread.ts != "1700000000.000001"


def test_the_database_api_down_for_every_database_is_one_incident(
    fake_scalingo: FakeScalingo, slack: FakeSlack, store: StateStore
) -> None:
    apps = seed_failures(fake_scalingo, 12)
    settings = Settings.from_env(env_for(fake_scalingo, SLACK_WEBHOOK_URL=slack.webhook_url))
    run_check(settings, clients_for(settings, store, notifier_for(slack, "webhook")), NOW)
    before = len(slack.messages())
    # GIVEN the database API answering 500 for every database, for four checks
    fake_scalingo.fail("/backups", 500, times=10_000)
    for i in range(1, 5):
        run_check(
            settings, clients_for(settings, store, notifier_for(slack, "webhook")), NOW + timedelta(minutes=15 * i)
        )
    during = slack.messages()[before:]
    # THEN one incident for the region, one mention, and no per-database "cannot check"
    assert [m["text"] for m in during] == ["<!here> Scalingo API failing in osc-fr1"]
    assert not any("Cannot check" in json.dumps(m) for m in during)
    # WHEN it clears THEN the region's incident is resolved, and nothing else is said
    fake_scalingo.faults.clear()
    run_check(settings, clients_for(settings, store, notifier_for(slack, "webhook")), NOW + timedelta(minutes=90))
    after = slack.messages()[before + len(during) :]
    assert [m["text"] for m in after] == ["Resolved: Scalingo API failing in osc-fr1"]
    assert len(apps) == 12


# -- every summary fits ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [150, 2000])
@pytest.mark.parametrize("kind", ["webhook", "bot"])
def test_the_daily_report_with_many_open_incidents_is_accepted_as_blocks_and_states_the_total(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path, count: int, kind: str
) -> None:
    # GIVEN `count` databases, each with an open incident (as a storm leaves them)
    keys = []
    store = SqliteStateStore(tmp_path / "s.sqlite3")
    records = []
    for i in range(count):
        key = f"osc-fr1/app-{i:04d}/ad-{i:04d}"
        keys.append(key)
        incident = Incident("failed", NOW - timedelta(hours=i % 50), NOW - timedelta(hours=1), slot=NOW)
        if kind == "bot":
            incident = replace(incident, thread=ThreadRef(CHANNEL, f"1700000{i:03d}.000100"))
        records.append(Record(key=key, incidents={"failed": incident}, first_seen_at=NOW - timedelta(days=9)))
    for record in records:
        store.save(record, NOW.timestamp())
    env = env_for(
        fake_scalingo,
        MONITORED_DATABASES=",".join(keys),
        DAILY_REPORT_AT=f"{(NOW - timedelta(minutes=5)):%H:%M} UTC",
    )
    if kind == "bot":
        env |= {"SLACK_BOT_TOKEN": slack.bot_token, "SLACK_CHANNEL": CHANNEL}
    settings = Settings.from_env(env)
    from backup_monitor.daily_report import send_daily_report

    outcome = send_daily_report(settings, store, notifier_for(slack, kind), settings.monitored, NOW, "test-owner")
    # THEN the report was accepted as blocks (not the plain-text retry), and it states the total
    assert outcome.value == "sent"
    (report,) = slack.messages()
    assert report.get("blocks")
    assert f"{count:,} open incidents" in json.dumps(report) or f"{count} open incidents" in json.dumps(report)
    assert "backup-monitor status --problems" in json.dumps(report)
    if kind == "bot":  # thread links open the exact message
        assert "https://fake-workspace.slack.com/archives/C0BACKUPS/p1700000" in json.dumps(report)
