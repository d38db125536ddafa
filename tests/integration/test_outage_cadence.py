"""Issue 18 with the default cadence: a Scalingo outage is still one incident. The few databases due in a check
are not enough evidence of an outage, so a region whose due reads fail on Scalingo's side is read a little
more (a few databases not due, cached tokens first): without that, each database would page "cannot check" on
its own as it came due, before (or instead of) the one outage incident."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from backup_monitor.check.model import Clients, Summary
from backup_monitor.check.pipeline import run_check
from backup_monitor.config import Settings
from backup_monitor.notifiers import ConsoleNotifier
from backup_monitor.scalingo.client import ScalingoClient, build_session
from backup_monitor.state.sqlite import SqliteStateStore
from tests.conftest import settings_for
from tests.fakes import FakeScalingo

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
SLOT_HOUR = 21  # no slot while the test runs


def test_an_api_outage_is_one_incident_with_the_default_cadence(fake_scalingo: FakeScalingo, tmp_path: Path) -> None:
    for i in range(12):
        fake_scalingo.add_database(f"app-{i:02d}", f"ad-{i:02d}", scheduled_hours=[SLOT_HOUR])
        for day in (24, 25, 26):
            fake_scalingo.add_backup(f"ad-{i:02d}", datetime(2026, 11, day, SLOT_HOUR, 5, tzinfo=UTC), size=1_000_000)
    store = SqliteStateStore(tmp_path / "state.sqlite3")
    out = io.StringIO()
    settings = settings_for(
        fake_scalingo, SUCCESS_NOTICES="off", DOWNLOAD_LINKS="false", VERIFY_ARCHIVES_EVERY_DAYS="0"
    )

    def check(s: Settings, now: datetime) -> Summary:
        scalingo = ScalingoClient.from_settings(s, session=build_session(retries=0, backoff_factor=0.01))
        return run_check(s, Clients(scalingo, store, ConsoleNotifier(out)), now)

    # GIVEN 12 healthy databases read once, their last reads 30 minutes apart (a staggered sweep)
    check(settings, NOW)
    records = store.load_many([f"osc-fr1/ad-{i:02d}" for i in range(12)], unreadable={})
    for i, (_, record) in enumerate(sorted(records.items())):
        store.save(replace(record, read_at=NOW + timedelta(minutes=30 * i)), NOW.timestamp())
    out.seek(0)
    out.truncate()
    # WHEN the database API fails for every database from 6 hours later, a check every 15 minutes, the cadence
    # reading one or two due databases each time
    fake_scalingo.fail("/backups", 503, times=100_000)
    cadence = replace(settings, sweep_every_hours=6.0)
    summaries = [check(cadence, NOW + timedelta(hours=6, minutes=15 * k)) for k in range(16)]
    text = out.getvalue()
    # THEN one outage incident, and no "cannot check" page per database
    assert text.count("Scalingo API failing in osc-fr1") == 1, text
    assert "Cannot check" not in text, text
    assert summaries[0].due <= 1  # the cadence read what was due, plus the evidence ...
    assert summaries[-1].held > 0  # ... and the outage holds the per-database notices
