"""Archive verification inside a whole check: fake Scalingo serving real dumps, fake Slack, SQLite state."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from backup_monitor.config import Settings
from backup_monitor.monitor import Clients, Summary, run_check
from backup_monitor.notifiers import WebhookNotifier
from backup_monitor.records import Record
from backup_monitor.scalingo.client import ScalingoClient, build_session
from backup_monitor.state.sqlite import SqliteStateStore
from tests.conftest import NOW, settings_for
from tests.fakes import FakeScalingo
from tests.fakes.slack import FakeSlack
from tests.support.archives import good, variants

KEY = "osc-fr1/ad-1"
TODAY_1AM = NOW.replace(hour=1)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


class World:
    """One PostgreSQL database on the fake, its state file, and a way to run checks."""

    def __init__(self, fake: FakeScalingo, slack: FakeSlack, tmp_path: Path, **env: str) -> None:
        self.fake, self.slack = fake, slack
        fake.add_database("shop", "ad-1", provider="postgresql", scheduled_hours=[1])
        env = {"MONITORED_DATABASES": "shop/ad-1", "LOOKBACK_HOURS": "1", **env}
        self.settings: Settings = settings_for(fake, **env)
        self.store = SqliteStateStore(tmp_path / "state.sqlite3")
        scalingo = ScalingoClient.from_settings(self.settings, session=build_session(retries=1, backoff_factor=0.01))
        self.clients = Clients(scalingo, self.store, WebhookNotifier(slack.webhook_url))

    def backup(self, created: datetime, data: bytes, size: int | None = None) -> str:
        backup = self.fake.add_backup("ad-1", created, size=len(data) if size is None else size)
        self.fake.set_archive(backup["id"], data)
        return str(backup["id"])

    def check(self, at: datetime, **kw: object) -> Summary:
        return run_check(self.settings, self.clients, at, **kw)  # type: ignore[arg-type]

    def texts(self) -> list[str]:
        return [json.dumps(m) for m in self.slack.messages()]

    def record(self) -> Record:
        return self.store.load_many([KEY])[KEY]


@pytest.fixture
def world(fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path) -> World:
    return World(fake_scalingo, slack, tmp_path, SLACK_MENTION="<!here>")


def test_a_good_archive_is_verified_once_and_the_notice_says_what_was_checked(world: World) -> None:
    # GIVEN a database whose newest backup is a real pg_dump archive
    world.backup(TODAY_1AM, good("postgresql"))
    # WHEN checked THEN the archive is downloaded once and the success notice names the backup and the checks
    summary = world.check(NOW)
    assert summary.exit_code == 0
    assert world.fake.count("download") == 1
    (text,) = world.texts()
    assert "1 backup archive verified" in text
    assert "20261127010000_shop" in text
    assert "pg_dump custom format" in text
    verified = world.record().verified
    assert verified is not None
    assert verified.outcome == "ok"
    assert timedelta(0) <= verified.at - NOW < timedelta(seconds=30)
    assert summary.findings["archive_verified"] == 1
    # WHEN checked again THEN nothing is downloaded, sent or written
    world.store.writes = 0
    world.check(NOW + timedelta(minutes=15))
    assert (world.fake.count("download"), len(world.texts()), world.store.writes) == (1, 1, 0)


def test_an_archive_redirected_within_the_database_api_is_verified(world: World) -> None:
    # GIVEN a download link that redirects to an object-store path on the database API's own host
    backup = world.backup(TODAY_1AM, good("postgresql"))
    world.fake.set_archive(backup, good("postgresql"), redirect=True)
    # WHEN checked THEN the redirect is followed and the archive verified
    world.check(NOW)
    assert [r.status for r in world.fake.requests if r.api == "download"] == [302, 200]
    verified = world.record().verified
    assert verified is not None
    assert verified.outcome == "ok"


def test_a_corrupt_archive_is_a_critical_incident_until_a_later_one_passes(world: World) -> None:
    # GIVEN a backup whose archive has one byte flipped
    world.backup(TODAY_1AM, variants("mysql")["byte flipped"].data)
    summary = world.check(NOW)
    # THEN one critical incident names what failed, with the mention
    (text,) = world.texts()
    assert "Backup archive unreadable" in text
    assert "<!here>" in text
    assert "gzip" in text
    assert summary.findings["archive_unreadable"] == 1
    # WHEN checked again THEN it is not repeated and not downloaded again
    world.check(NOW + timedelta(minutes=15))
    assert (world.fake.count("download"), len(world.texts())) == (1, 1)
    # WHEN the next day's backup is good THEN it is verified at once and the incident is resolved
    world.backup(TODAY_1AM + timedelta(days=1), good("postgresql"))
    world.check(NOW + timedelta(days=1))
    texts = world.texts()[1:]
    assert any("Resolved: backup archive unreadable" in t for t in texts)
    assert any("1 backup archive verified" in t for t in texts)
    assert "archive_unreadable" not in world.record().incidents


def test_an_archive_too_big_is_said_once_as_a_warning(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path
) -> None:
    world = World(fake_scalingo, slack, tmp_path, VERIFY_MAX_GB="0.001", SLACK_MENTION="<!here>")
    world.backup(TODAY_1AM, good("postgresql"), size=2_000_000)
    world.check(NOW)
    (text,) = world.texts()
    assert "Backup archive not verified" in text
    assert "VERIFY_MAX_GB" in text
    assert "<!here>" not in text
    # WHEN a week passes and the new backup is too big as well THEN nothing more is said, nothing downloaded
    world.backup(TODAY_1AM + timedelta(days=8), good("postgresql"), size=2_000_000)
    world.check(NOW + timedelta(days=8))
    world.backup(TODAY_1AM + timedelta(days=9), good("postgresql"), size=2_000_000)
    world.check(NOW + timedelta(days=9))
    said = [t for t in world.texts() if "not verified" in t]
    assert (len(said), world.fake.count("download")) == (1, 0)


def test_verification_off_downloads_nothing(fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path) -> None:
    world = World(fake_scalingo, slack, tmp_path, VERIFY_ARCHIVES_EVERY_DAYS="0")
    world.backup(TODAY_1AM, variants("mysql")["byte flipped"].data)
    world.check(NOW)
    assert (world.fake.count("download"), world.texts()) == (0, [])


def test_no_verification_starts_without_the_time_for_it(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path
) -> None:
    # GIVEN a check limited to 5 s: time for the database, not for a verification (30 s kept back at least)
    world = World(fake_scalingo, slack, tmp_path, CHECK_TIME_LIMIT_SECONDS="5")
    world.backup(TODAY_1AM, good("postgresql"))
    summary = world.check(NOW)
    assert (summary.exit_code, summary.checked, world.fake.count("download"), world.texts()) == (0, 1, 0, [])
    # WHEN a later check has time (a Lambda with 10 minutes left) THEN it verifies
    world.settings = replace(world.settings, check_time_limit=None)
    world.check(NOW + timedelta(minutes=15), remaining_seconds=600.0)
    assert world.fake.count("download") == 1


def test_an_alert_slack_refused_is_sent_by_the_next_check_without_downloading_again(world: World) -> None:
    world.backup(TODAY_1AM, variants("redis")["truncated"].data)
    world.slack.fail_next(1, 404, "no_service")
    summary = world.check(NOW)
    assert (summary.undelivered, world.texts()) == (1, [])
    # WHEN the next check runs THEN it announces the stored verdict, without a second download
    world.check(NOW + timedelta(minutes=15))
    (text,) = world.texts()
    assert "Backup archive unreadable" in text
    assert "truncated" in text
    assert world.fake.count("download") == 1
    world.check(NOW + timedelta(minutes=30))
    assert len(world.texts()) == 1


def test_a_dry_run_verifies_nothing(world: World) -> None:
    world.backup(TODAY_1AM, good("postgresql"))
    world.check(NOW, dry_run=True)
    assert world.fake.count("download") == 0
