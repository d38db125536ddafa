"""Issue 18: fleets larger than one check's share of Scalingo's quota, on the fake enforcing 60 main-API
requests a minute, with the client's default 40, the Lambda's budget and time scaled (a minute of Scalingo's
rate window is WINDOW real seconds; the checks' clock, the tokens' and the budget run as fast).

- 600 apps of one database each: every database is read within 4 checks (discovery never starves checking);
- a fleet that grows past one check's discovery keeps every database read;
- a missing backup in a 10,000-database fleet (30 % of it sharing the slot hour) pages within the grace plus one
  check period.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backup_monitor.check.model import Clients, Summary
from backup_monitor.check.pipeline import run_check
from backup_monitor.check.targets import discovery_key
from backup_monitor.config import ReportTime, Settings, Target
from backup_monitor.notifiers import ConsoleNotifier
from backup_monitor.records import Record
from backup_monitor.scalingo.client import ScalingoClient
from backup_monitor.scalingo.models import Database
from backup_monitor.state.chunks import save_record
from backup_monitor.state.sqlite import SqliteStateStore
from tests.conftest import settings_for
from tests.fakes import FakeScalingo

SCALE = 120.0  # simulated seconds per real second
WINDOW = 60.0 / SCALE
BUDGET = 840.0  # the Lambda's: 900 s less the 60 s margin
PERIOD = timedelta(minutes=15)
START = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
OTHER_HOURS = list(range(9, 24))  # no other slot comes while the test runs


class SimClock:
    """Simulated epoch seconds: `at` when the check starts, then SCALE times faster than the wall clock."""

    def __init__(self) -> None:
        self.at, self.real = START.timestamp(), time.time()

    def set(self, moment: datetime) -> None:
        self.at, self.real = moment.timestamp(), time.time()

    def __call__(self) -> float:
        return self.at + (time.time() - self.real) * SCALE


@pytest.fixture
def clock() -> SimClock:
    return SimClock()


@pytest.fixture
def fake(clock: SimClock) -> Iterator[FakeScalingo]:
    with FakeScalingo(clock=clock) as server:
        server.main_rate_limit = 60  # Scalingo's, per (scaled) minute
        server.main_rate_window = WINDOW
        yield server


class Fleet:
    """Checks every 15 simulated minutes, each with a new client (tokens come from the store, as in a new
    Lambda container) under the Lambda's budget."""

    def __init__(self, fake: FakeScalingo, clock: SimClock, path: Path, **env: str) -> None:
        self.fake, self.clock = fake, clock
        self.store = SqliteStateStore(path / "state.sqlite3")
        self.settings: Settings = settings_for(
            fake,
            SCALINGO_API_RATE_LIMIT="40",
            CHECK_TIME_LIMIT_SECONDS=str(BUDGET / SCALE),
            MAX_WORKERS="8",
            VERIFY_ARCHIVES_EVERY_DAYS="0",
            DOWNLOAD_LINKS="false",
            SUCCESS_NOTICES="off",
            SWEEP_EVERY_HOURS="6",
            **env,
        )
        self.out = io.StringIO()
        self.summaries: list[Summary] = []

    def check(self, now: datetime) -> Summary:
        self.clock.set(now)
        scalingo = ScalingoClient.from_settings(self.settings, clock=self.clock, window_seconds=WINDOW)
        summary = run_check(self.settings, Clients(scalingo, self.store, ConsoleNotifier(self.out)), now)
        self.summaries.append(summary)
        return summary

    def never_read(self, addons: list[str]) -> list[str]:
        keys = {f"osc-fr1/{a}": a for a in addons}
        records = self.store.load_many(list(keys), unreadable={})
        return sorted(a for k, a in keys.items() if k not in records or records[k].read_at is None)


def seed(fake: FakeScalingo, apps: range, per_app: int = 1, hour: int = 1) -> list[str]:
    """Apps with `per_app` healthy databases each (a done backup at `hour` every night); their addon ids."""
    addons = []
    for i in apps:
        for j in range(per_app):
            addon = f"ad-{i:05d}-{j}"
            fake.add_database(f"app-{i:05d}", addon, scheduled_hours=[hour])
            for day in (25, 26, 27):
                fake.add_backup(addon, datetime(2026, 11, day, hour, 5, tzinfo=UTC), size=1_000_000)
            addons.append(addon)
    return addons


def test_600_apps_of_one_database_each_are_all_read_within_4_checks(
    fake: FakeScalingo, clock: SimClock, tmp_path: Path
) -> None:
    addons = seed(fake, range(600))
    fleet = Fleet(fake, clock, tmp_path)
    # GIVEN 600 apps: discovery alone needs 601 requests, more than a check's 40 a minute for 14 minutes
    for n in range(4):
        summary = fleet.check(START + n * PERIOD)
        assert not summary.reached_none, summary.line()
        assert summary.checked > 0 or summary.due == 0, summary.line()
    # THEN every database was read within 4 checks, and nothing was said about healthy databases
    assert fleet.never_read(addons) == []
    assert fleet.out.getvalue() == ""
    assert fake.count("main", "/v1/apps", method="GET") >= 601
    assert sum(1 for r in fake.requests if r.status == 429) == 0
    # AND the daily report, sent by a check that reads none of them, covers all 600
    report_at = START + 4 * PERIOD
    fleet.settings = replace(fleet.settings, daily_report=ReportTime(report_at.timetz().replace(tzinfo=None), "UTC"))
    summary = fleet.check(report_at)
    assert summary.due == 0
    assert "Databases watched: 600 (" in fleet.out.getvalue()
    assert "[OK] Daily backup report" in fleet.out.getvalue()


def test_a_fleet_that_grows_past_one_checks_discovery_keeps_every_database_read(
    fake: FakeScalingo, clock: SimClock, tmp_path: Path
) -> None:
    first = seed(fake, range(300))
    fleet = Fleet(fake, clock, tmp_path)
    for n in range(3):
        fleet.check(START + n * PERIOD)
    assert fleet.never_read(first) == []
    # GIVEN the fleet grows to 800 apps, past what one check can discover and read
    grown = seed(fake, range(300, 800))
    later = START + timedelta(hours=6)  # the next discovery pass, and the first databases' sweep
    for n in range(6):
        summary = fleet.check(later + n * PERIOD)
        assert not summary.reached_none, summary.line()
    # THEN every database, old and new, was read; the old ones again (their sweep), none left waiting
    assert fleet.never_read(first + grown) == []
    records = fleet.store.load_many([f"osc-fr1/{a}" for a in first], unreadable={})
    assert all(r.read_at is not None and r.read_at >= later for r in records.values())
    assert fleet.summaries[-1].left == 0
    assert fleet.out.getvalue() == ""


def test_a_missing_backup_in_a_10000_database_fleet_pages_within_the_grace_plus_one_period(
    fake: FakeScalingo, clock: SimClock, tmp_path: Path
) -> None:
    # GIVEN 10,000 databases (5 per app) read at their last sweep, 30 % of them sharing the 03:00 slot
    fleet = Fleet(fake, clock, tmp_path)
    slot = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    read = slot - timedelta(hours=2)
    discovered: dict[str, str] = {}
    records = []
    for i in range(2000):
        app = f"app-{i:05d}"
        for j in range(5):
            addon = f"ad-{i:05d}-{j}"
            n = 5 * i + j
            hour = 3 if n % 10 < 3 else OTHER_HOURS[n % len(OTHER_HOURS)]
            fake.add_database(app, addon, scheduled_hours=[hour])
            last = datetime(2026, 11, 27, hour, 5, tzinfo=UTC)
            if last + timedelta(hours=24) <= read:
                last += timedelta(hours=24)
            backup_id = fake.add_backup(addon, last, size=1_000_000)["id"]
            target = Target("osc-fr1", app, addon)
            discovered[target.name] = "postgresql"
            database = Database(
                f"db-{addon}", app, "postgresql", True, (hour,), status="running", created_at=START - timedelta(days=90)
            )
            records.append(
                Record(
                    key=target.key,
                    handled={backup_id: "done"},
                    database=database,
                    database_fetched_at=read,
                    first_seen_at=START - timedelta(days=30),
                    read_at=read - timedelta(minutes=n % 60),  # their sweeps come due from 06:00
                    filled_slot=last.replace(minute=0),
                    last_usable_at=last.replace(minute=0),
                )
            )
    for record in records:
        fleet.store.save(record, read.timestamp())
    listing = Record(key=discovery_key(fleet.settings), discovered=discovered, database_fetched_at=read)
    save_record(fleet.store, listing, read.timestamp())
    # every database backs up at its slot, but one of the 3,000 at 03:00 does not
    crowd = [r.key.split("/")[1] for r in records if r.database is not None and r.database.scheduled_hours == (3,)]
    assert len(crowd) == 3000
    missing = crowd[1777]
    missing_app = "app-" + missing.split("-")[1]
    for addon in crowd:
        if addon != missing:
            fake.add_backup(addon, slot + timedelta(minutes=7), size=1_000_000)
    # WHEN a check runs every 15 minutes from the slot
    paged: datetime | None = None
    now = slot
    while paged is None and now <= slot + timedelta(hours=4):
        fleet.out.seek(0)
        fleet.out.truncate()
        summary = fleet.check(now)
        assert not summary.reached_none, summary.line()
        text = fleet.out.getvalue()
        if "Daily backup missing" in text:
            assert f"{missing_app} /" in text  # that one database, and no other
            assert text.count("Daily backup missing") == 1
            paged = now
        now += PERIOD
    # THEN it pages within the grace (3 h) plus one period
    assert paged is not None
    assert slot + timedelta(hours=3) <= paged <= slot + timedelta(hours=3) + PERIOD
