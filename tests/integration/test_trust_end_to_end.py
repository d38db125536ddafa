"""Issue 8, points 5 to 10, end to end: run_check over real HTTP (fake Scalingo, fake Slack) with the clock
passed in, on SQLite and on DynamoDB Local."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backup_monitor.config import Settings
from backup_monitor.monitor import Clients, Summary, run_check
from backup_monitor.notifiers import BotNotifier, WebhookNotifier
from backup_monitor.scalingo.client import ScalingoClient, build_session
from backup_monitor.state.base import StateStore
from backup_monitor.state.dynamodb import DynamoStateStore
from backup_monitor.state.sqlite import SqliteStateStore
from tests.fakes import FakeScalingo
from tests.fakes.slack import FakeSlack

MENTION = "<!here>"


def at(day: int, hour: float, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, tzinfo=UTC) + timedelta(hours=hour, minutes=minute)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StateStore:
    if request.param == "sqlite":
        return SqliteStateStore(tmp_path / "state.sqlite3")
    return DynamoStateStore(request.getfixturevalue("dynamodb_table"))


class Monitor:
    """One monitor installation: settings, clients, and what it posted."""

    def __init__(self, fake: FakeScalingo, slack: FakeSlack, store: StateStore, bot: bool = False, **env: str):
        values = {
            "SCALINGO_API_TOKEN": fake.api_token,
            "SCALINGO_AUTH_URL": fake.url,
            "SCALINGO_API_URL": fake.region_url(),
            "SCALINGO_DB_API_URL": fake.region_url(),
            "SCALINGO_API_RATE_LIMIT": "6000",
            "SLACK_MENTION": MENTION,
            "SUCCESS_NOTICES": "off",
            "VERIFY_ARCHIVES_EVERY_DAYS": "0",  # the fake serves no archives here (see test_archive_check.py)
            "DAILY_REPORT_AT": "",  # the daily report has its own tests (test_daily_report.py)
            "SWEEP_EVERY_HOURS": "0",  # every database at every check (the cadence has its own tests)
            **env,
        }
        if bot:
            values.update(SLACK_BOT_TOKEN=slack.bot_token, SLACK_CHANNEL="C0BACKUPS")
        self.settings = Settings.from_env(values)
        notifier = (
            BotNotifier(slack.bot_token, "C0BACKUPS", base_url=slack.api_url)
            if bot
            else WebhookNotifier(slack.webhook_url)
        )
        scalingo = ScalingoClient.from_settings(self.settings, session=build_session(retries=1, backoff_factor=0.01))
        self.clients = Clients(scalingo, store, notifier)
        self.slack = slack

    def check(self, now: datetime) -> tuple[Summary, list[str]]:
        """One check at `now`: its summary and the texts it posted."""
        before = len(self.slack.messages())
        summary = run_check(self.settings, self.clients, now)
        return summary, [m["text"] for m in self.slack.messages()[before:]]


def nightly(fake: FakeScalingo, addon: str, hour: int, days: range) -> None:
    for day in days:
        fake.add_backup(addon, at(day, hour), size=1_000_000)


def test_p5_a_new_database_is_first_expected_at_its_next_slot(
    fake_scalingo: FakeScalingo, slack: FakeSlack, store: StateStore
) -> None:
    # GIVEN a database created on the 26th at 10:00 with a midnight schedule, never backed up yet
    fake_scalingo.add_database("fresh", "ad-fresh", scheduled_hours=[0], created_at=at(26, 10))
    monitor = Monitor(fake_scalingo, slack, store)
    # WHEN checked before its first slot's grace has passed THEN nothing is said
    summary, texts = monitor.check(at(27, 2, 30))
    assert (summary.exit_code, texts) == (0, [])
    # WHEN its first slot passes without a backup THEN on-call is paged once
    summary, texts = monitor.check(at(27, 3, 5))
    assert texts == [f"{MENTION} Daily backup missing: fresh/fresh-1 (postgresql, osc-fr1)"]


def test_p6_a_23h_schedule_is_not_resolved_at_midnight_nor_paged_again(
    fake_scalingo: FakeScalingo, slack: FakeSlack, store: StateStore
) -> None:
    fake_scalingo.add_database("night", "ad-night", scheduled_hours=[23])
    nightly(fake_scalingo, "ad-night", 23, range(18, 25))  # the last one on the 24th
    monitor = Monitor(fake_scalingo, slack, store)
    assert monitor.check(at(25, 12))[1] == []
    # GIVEN the 25th's 23:00 backup did not happen
    _, opened = monitor.check(at(26, 2, 5))
    assert opened == [f"{MENTION} Daily backup missing: night/night-1 (postgresql, osc-fr1)"]
    # WHEN midnight passes THEN the incident is not "resolved"
    assert monitor.check(at(27, 0, 30))[1] == []
    # WHEN the 26th's slot is missed too THEN it is an update without the mention
    _, updated = monitor.check(at(27, 2, 5))
    assert updated == ["Daily backup still missing: night/night-1 (postgresql, osc-fr1)"]


def test_p7_short_and_empty_answers_announce_nothing_again(
    fake_scalingo: FakeScalingo, slack: FakeSlack, store: StateStore
) -> None:
    fake_scalingo.add_database("shop", "ad-shop", scheduled_hours=[1])
    nightly(fake_scalingo, "ad-shop", 1, range(20, 28))
    fake_scalingo.add_backup("ad-shop", at(26, 14), "error", size=None, method="manual")
    monitor = Monitor(fake_scalingo, slack, store, SUCCESS_NOTICES="each")
    _, texts = monitor.check(at(27, 9))
    assert len(texts) == 3  # the manual failure (resolved by the next night: a notice) and two successes
    # GIVEN an answer listing only the newest backup WHEN checked THEN nothing is new
    newest = fake_scalingo.backups("ad-shop")[-2]
    fake_scalingo.fail("/api/databases/ad-shop/backups", 200, json.dumps({"database_backups": [newest]}))
    short, texts = monitor.check(at(27, 9, 15))
    assert (short.exit_code, texts) == (0, [])
    # WHEN the full list comes back THEN no old success or failure is announced again
    full, texts = monitor.check(at(27, 9, 30))
    assert (full.exit_code, texts) == (0, [])
    # WHEN the answer suddenly lists none of the known backups THEN it is a failed read, not data
    fake_scalingo.fail("/api/databases/ad-shop/backups", 200, '{"database_backups": []}', times=2)
    empty, texts = monitor.check(at(27, 9, 45))
    assert (empty.exit_code, empty.unchecked, texts) == (1, ["shop/ad-shop"], [])
    again, texts = monitor.check(at(27, 10))
    assert (again.exit_code, texts) == (1, [])  # two in a row: below "cannot check" (3)
    assert monitor.check(at(27, 10, 15))[1] == []


def test_p8_a_deleted_database_is_said_once_and_its_incidents_closed(
    fake_scalingo: FakeScalingo, slack: FakeSlack, store: StateStore
) -> None:
    fake_scalingo.add_database("shop", "ad-shop", scheduled_hours=[1])
    nightly(fake_scalingo, "ad-shop", 1, range(20, 28))
    fake_scalingo.add_database("old", "ad-old", scheduled_hours=[1])
    nightly(fake_scalingo, "ad-old", 1, range(20, 27))
    fake_scalingo.add_backup("ad-old", at(27, 1), "error", size=None)
    monitor = Monitor(fake_scalingo, slack, store, bot=True)
    _, opened = monitor.check(at(27, 9))
    assert f"{MENTION} Backup failed: old/old-10 (postgresql, osc-fr1)" in opened
    # GIVEN the database is deleted WHEN checked THEN the 404 alone retires nothing: its region's discovery no
    # longer lists it, so it is held (nothing said, the check succeeds) until a pass an hour later confirms it
    fake_scalingo.remove_database("ad-old")
    summary, texts = monitor.check(at(27, 9, 15))
    assert (summary.exit_code, texts, summary.unlisted, summary.gone) == (0, [], ["old/ad-old"], [])
    summary, texts = monitor.check(at(27, 9, 45))
    assert (summary.exit_code, texts, summary.unlisted) == (0, [], ["old/ad-old"])
    # WHEN checked an hour after the first miss THEN its incidents close in their threads, one warning says
    # it is no longer watched (no mention), and the check succeeds
    summary, texts = monitor.check(at(27, 10, 20))
    assert summary.exit_code == 0
    assert summary.gone == ["old/ad-old"]
    assert sorted(texts) == [
        "Database no longer watched: old/old-10 (postgresql, osc-fr1)",
        "Resolved: backup failed: old/old-10 (postgresql, osc-fr1)",
        "Resolved: daily backup missing: old/old-10 (postgresql, osc-fr1)",
    ]
    resolved = [m for m in slack.messages() if m["text"].startswith("Resolved")]
    assert all(m.get("thread_ts") for m in resolved)
    assert {m["thread_ts"] for m in resolved} <= {u["ts"] for u in slack.updates()}
    # WHEN checked again THEN nothing more is said about it, and it costs no request
    fake_scalingo.reset_requests()
    summary, texts = monitor.check(at(27, 10, 30))
    assert (summary.exit_code, texts, summary.targets) == (0, [], 1)
    assert fake_scalingo.count(path_contains="ad-old") == 0


def test_p8_a_named_database_that_is_gone_stays_a_critical_cannot_check(
    fake_scalingo: FakeScalingo, slack: FakeSlack, store: StateStore
) -> None:
    fake_scalingo.add_database("old", "ad-old", scheduled_hours=[1])
    nightly(fake_scalingo, "ad-old", 1, range(20, 28))
    monitor = Monitor(fake_scalingo, slack, store, MONITORED_DATABASES="old/ad-old")
    assert monitor.check(at(27, 9))[1] == []
    fake_scalingo.remove_app("old")
    summary, texts = monitor.check(at(27, 9, 15))
    assert summary.exit_code == 1
    assert texts == [f"{MENTION} Cannot check backups: old/old-1 (postgresql, osc-fr1)"]


def test_p8_a_404_on_a_database_discovery_still_lists_is_a_failed_read(
    fake_scalingo: FakeScalingo, slack: FakeSlack, store: StateStore
) -> None:
    fake_scalingo.add_database("shop", "ad-shop", scheduled_hours=[1])
    nightly(fake_scalingo, "ad-shop", 1, range(20, 28))
    monitor = Monitor(fake_scalingo, slack, store)
    monitor.check(at(27, 9))
    fake_scalingo.fail("/api/databases/ad-shop/backups", 404, '{"resource": "database", "error": "not found"}')
    summary, texts = monitor.check(at(27, 9, 15))
    assert (summary.exit_code, summary.unchecked, summary.gone, texts) == (1, ["shop/ad-shop"], [], [])
    assert fake_scalingo.count("main", "/v1/apps") >= 1  # rediscovered before deciding
    assert monitor.check(at(27, 9, 30))[0].exit_code == 0


def test_p9_review_apps_are_excluded_and_cost_no_request(
    fake_scalingo: FakeScalingo, slack: FakeSlack, store: StateStore
) -> None:
    fake_scalingo.add_database("shop", "ad-shop", scheduled_hours=[1])
    nightly(fake_scalingo, "ad-shop", 1, range(20, 28))
    fake_scalingo.add_database("shop-pr12", "ad-review", scheduled_hours=[1])  # never backed up
    monitor = Monitor(fake_scalingo, slack, store)
    summary, texts = monitor.check(at(27, 9))
    assert (summary.exit_code, summary.targets, summary.excluded, texts) == (0, 1, 1, [])
    assert fake_scalingo.count(path_contains="shop-pr12") == 0
    assert fake_scalingo.count(path_contains="ad-review") == 0


def test_p10_a_moved_schedule_does_not_page_the_next_night(
    fake_scalingo: FakeScalingo, slack: FakeSlack, store: StateStore
) -> None:
    fake_scalingo.add_database("shop", "ad-shop", scheduled_hours=[0])
    nightly(fake_scalingo, "ad-shop", 0, range(20, 27))
    monitor = Monitor(fake_scalingo, slack, store)
    assert monitor.check(at(26, 12))[1] == []  # the schedule (00:00) is now cached for a day
    # GIVEN the schedule is moved to 13:00 in the afternoon of the 26th
    fake_scalingo.database("ad-shop")["periodic_backups_scheduled_at"] = [13]
    fake_scalingo.reset_requests()
    # WHEN the next night's check finds no 00:00 backup THEN it reads the database again and stays quiet
    summary, texts = monitor.check(at(27, 3, 30))
    assert (summary.exit_code, texts) == (0, [])
    assert fake_scalingo.count("db", "/api/databases/ad-shop", method="GET") == 3  # backups, PITR, the database
    # AND the new 13:00 slot is watched
    _, texts = monitor.check(at(27, 16, 5))
    assert texts == [f"{MENTION} Daily backup missing: shop/shop-1 (postgresql, osc-fr1)"]
