"""One bad answer harms only itself, through a whole check (issue 16): a slow-loris answer, a malformed entry,
a duplicated id, a huge list. Real parts over loopback: the fake Scalingo API, a fake Slack, SQLite."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backup_monitor.config import Settings
from backup_monitor.monitor import Clients, Summary, run_check
from backup_monitor.notifiers import WebhookNotifier
from backup_monitor.scalingo.client import ScalingoClient, build_session
from backup_monitor.state.sqlite import SqliteStateStore
from tests.fakes import FakeScalingo
from tests.fakes.slack import FakeSlack

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(rate_per_channel=1.0) as fake:
        yield fake


def check(fake: FakeScalingo, slack: FakeSlack, path: Path, at: datetime, **extra: str) -> tuple[Summary, float]:
    settings = Settings.from_env(
        {
            "SCALINGO_API_TOKEN": fake.api_token,
            "SCALINGO_AUTH_URL": fake.url,
            "SCALINGO_API_URL": fake.region_url(),
            "SCALINGO_DB_API_URL": fake.region_url(),
            "SCALINGO_API_RATE_LIMIT": "60000",
            "SUCCESS_NOTICES": "each",
            "DOWNLOAD_LINKS": "false",
            "VERIFY_ARCHIVES_EVERY_DAYS": "0",
            "DAILY_REPORT_AT": "",
            "GROUP_WAIT_SECONDS": "0",
            **extra,
        }
    )
    scalingo = ScalingoClient.from_settings(settings, session=build_session(retries=1, backoff_factor=0.01))
    started = time.monotonic()
    summary = run_check(settings, Clients(scalingo, SqliteStateStore(path), WebhookNotifier(slack.webhook_url)), at)
    return summary, time.monotonic() - started


def texts(slack: FakeSlack) -> list[str]:
    return [str(m["text"]) for m in slack.messages()]


def test_a_slow_loris_answer_costs_only_its_database(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path
) -> None:
    # GIVEN one database whose backups list comes one byte every 4 seconds, and another whose backup failed
    fake_scalingo.add_database("slow", "ad-slow", scheduled_hours=[])
    fake_scalingo.add_database("billing", "ad-billing", scheduled_hours=[])
    fake_scalingo.add_backup("ad-billing", NOW - timedelta(hours=20), size=10_000_000)
    fake_scalingo.add_backup("ad-billing", NOW - timedelta(hours=1), "error", size=None)
    fake_scalingo.fail("/api/databases/ad-slow/backups", 200, '{"database_backups": []}', drip_seconds=4, times=99)
    # WHEN checked with a 20 s budget and a 5 s timeout
    summary, seconds = check(
        fake_scalingo, slack, tmp_path / "s", NOW, CHECK_TIME_LIMIT_SECONDS="20", HTTP_TIMEOUT_SECONDS="5"
    )
    # THEN the check ends in time, the slow one is a failed read, and the other failure reached Slack
    assert seconds < 20 + 10, seconds
    assert any(t.startswith("Backup failed: billing/") for t in texts(slack))
    assert summary.unchecked == ["slow/ad-slow"]


def test_a_malformed_entry_beside_a_failed_backup_hides_nothing(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path
) -> None:
    fake_scalingo.add_database("billing", "ad-billing", scheduled_hours=[])
    fake_scalingo.add_backup("ad-billing", NOW - timedelta(hours=20), size=10_000_000, name="good-one")
    fake_scalingo.add_backup("ad-billing", NOW - timedelta(hours=1), "error", size=None, name="the-failed-one")
    fake_scalingo.add_raw_backup("ad-billing", {"id": 42, "created_at": "yesterday", "status": "done"})
    # WHEN checked twice
    first, _ = check(fake_scalingo, slack, tmp_path / "s", NOW)
    second, _ = check(fake_scalingo, slack, tmp_path / "s", NOW + timedelta(minutes=15))
    assert first.checked == 1
    # THEN the failure beside the bad entry is announced, and the bad entry is said once, as a warning
    posted = texts(slack)
    assert any(t.startswith("Backup failed: billing/") for t in posted)
    assert sum(t.startswith("Backup list partly unreadable: billing/") for t in posted) == 1
    assert "has the wrong type (int)" in json.dumps(slack.messages())  # which field, never the entry itself
    assert second.sent == 0


def test_the_same_backup_id_listed_twice_is_announced_once(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path
) -> None:
    fake_scalingo.add_database("billing", "ad-billing", scheduled_hours=[])
    fake_scalingo.add_backup("ad-billing", NOW - timedelta(hours=20), size=10_000_000)
    failed = fake_scalingo.add_backup("ad-billing", NOW - timedelta(hours=1), "error", size=None)
    fake_scalingo.add_raw_backup("ad-billing", dict(failed))
    check(fake_scalingo, slack, tmp_path / "s", NOW)
    assert sum(t.startswith("Backup failed: billing/") for t in texts(slack)) == 1


def test_ten_thousand_new_backups_in_one_list_cost_a_bounded_check(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path
) -> None:
    # GIVEN a list of 10,000 new successful backups (a bug, or a hostile answer)
    fake_scalingo.add_database("flood", "ad-flood", scheduled_hours=[])
    for i in range(10_000):
        fake_scalingo.add_backup("ad-flood", NOW - timedelta(hours=1, seconds=i), size=10_000_000)
    fake_scalingo.reset_requests()
    summary, _ = check(fake_scalingo, slack, tmp_path / "s", NOW, DOWNLOAD_LINKS="true")
    # THEN at most 10 success notices and 5 download links for that database in this check
    assert len(slack.messages()) <= 10
    assert fake_scalingo.count("db", path_contains="/archive") <= 5
    # AND the rest is recorded: the next check says nothing
    again, _ = check(fake_scalingo, slack, tmp_path / "s", NOW + timedelta(minutes=15))
    assert again.sent == 0, again.line()
    assert summary.exit_code == 0
