"""Issue 18, point 2: a database is read when it can have news (cadence.py), one row per reason."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from backup_monitor.cadence import PITR, RETRY, SLOT, SWEEP, due, with_read_at
from backup_monitor.config import Policy
from backup_monitor.records import Incident, PendingEdit, Record
from backup_monitor.scalingo.models import Database

POLICY = Policy()  # grace 3 h, stuck 6 h, PITR lag 6 h
SWEEP_HOURS = 6.0


def at(day: int, hour: float, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, tzinfo=UTC) + timedelta(hours=hour, minutes=minute)


def quiet(**changes: object) -> Record:
    """A database read at 27 Nov 02:00 whose 01:00 slot is filled: nothing to expect until a sweep."""
    database = Database("db1", "shop-1", "postgresql", True, (1,), status="running", created_at=at(1, 0))
    record = Record(
        key="osc-fr1/ad-1", first_seen_at=at(1, 0), database=database, read_at=at(27, 2), filled_slot=at(27, 1)
    )
    return replace(record, **changes)  # type: ignore[arg-type]


def reason(record: Record | None, now: datetime, **kw: object) -> tuple[str, datetime, int] | None:
    found = due(record, now, POLICY, SWEEP_HOURS, **kw)  # type: ignore[arg-type]
    return None if found is None else (found.reason, found.since, found.urgency)


INCIDENT = Incident("failed", opened_at=at(27, 1, 30), last_notice_at=at(27, 1, 30))


@pytest.mark.parametrize(
    ("record", "now", "kw", "expected"),
    [
        # quiet: nothing before the sweep, the sweep SWEEP_EVERY_HOURS after the last read
        (quiet(), at(27, 7, 59), {}, None),
        (quiet(), at(27, 8), {}, ("sweep", at(27, 8), SWEEP)),
        # the next slot: due from it until a usable backup fills it, for at most grace + stuck + 1 h (10 h)
        (quiet(read_at=at(27, 23)), at(28, 1), {}, ("slot", at(28, 1), SLOT)),
        # ... read since the slot and still unfilled: it waits from that read
        (quiet(read_at=at(28, 1, 15)), at(28, 3, 59), {}, ("slot", at(28, 1, 15), SLOT)),
        # ... and once past its grace (3 h) the read decides a page: as urgent as an incident
        (quiet(read_at=at(28, 6)), at(28, 11), {}, ("slot", at(28, 4), RETRY)),
        (quiet(read_at=at(28, 6)), at(28, 11, 1), {}, None),  # past the window, before the sweep
        (quiet(read_at=at(28, 6)), at(28, 12), {}, ("sweep", at(28, 12), SWEEP)),
        (quiet(read_at=at(28, 1, 15), filled_slot=at(28, 1)), at(28, 1, 30), {}, None),
        # periodic backups off: only the sweep
        (
            quiet(database=replace(quiet().database, periodic_backups_enabled=False), read_at=at(28, 0)),  # type: ignore[type-var]
            at(28, 1, 30),
            {},
            None,
        ),
        # a slot before the database existed is not expected (as the rules have it: its creation date)...
        (
            quiet(database=replace(quiet().database, created_at=at(28, 1, 30)), read_at=at(28, 1, 40)),  # type: ignore[type-var]
            at(28, 2),
            {},
            None,
        ),
        # ... but one first seen after its slot is: the rules page for it
        (quiet(first_seen_at=at(28, 1, 30), read_at=at(28, 1, 30)), at(28, 2), {}, ("slot", at(28, 1, 30), SLOT)),
        # never read, or unknown: at once (a new database waits from when discovery listed it)
        (None, at(27, 9), {"listed_at": at(27, 8)}, ("new", at(27, 8), SLOT)),
        (Record(key="k"), at(27, 9), {}, ("new", at(27, 9), SLOT)),
        # failing reads, owed messages and edits: every check
        # (tried at every check, they never wait)
        (quiet(api_failures=1, failing_since=at(27, 3)), at(27, 4), {}, ("retry", at(27, 4), RETRY)),
        (quiet(pending_edits=(PendingEdit("C1", "1.2", "text"),)), at(27, 3), {}, ("retry", at(27, 3), RETRY)),
        # owed (left, or a message not delivered): its own reason's urgency and wait; none: as a slot
        (quiet(), at(27, 3), {"owed": True}, ("owed", at(27, 3), SLOT)),
        (quiet(), at(27, 9), {"owed": True}, ("owed", at(27, 8), SWEEP)),
        (quiet(read_at=at(28, 1, 15)), at(28, 2), {"owed": True}, ("owed", at(28, 1, 15), SLOT)),
        (quiet(claim_owner="check-1"), at(27, 3), {}, ("owed", at(27, 3), SLOT)),
        # listed again after its retirement (no first sight): new
        (quiet(first_seen_at=None), at(27, 3), {"listed_at": at(27, 2)}, ("new", at(27, 2), SLOT)),
        # an open incident: hourly, and at every check while the addon token lives
        (quiet(incidents={"failed": INCIDENT}), at(27, 2, 30), {}, None),
        (quiet(incidents={"failed": INCIDENT}), at(27, 3), {}, ("incident", at(27, 3), RETRY)),
        (
            quiet(incidents={"failed": INCIDENT}),
            at(27, 2, 15),
            {"token_cached": True},
            ("incident", at(27, 2, 15), RETRY),
        ),
        # "covered by PITR" is said once: nothing to follow
        (quiet(incidents={"pitr_only": replace(INCIDENT, kind="pitr_only")}), at(27, 4), {}, None),
        # point-in-time recovery: when the restore point as read would be behind
        (quiet(pitr_latest=at(27, 1, 50)), at(27, 7, 49), {}, None),
        (quiet(pitr_latest=at(27, 1, 50)), at(27, 7, 50), {}, ("pitr", at(27, 7, 50), PITR)),
    ],
)
def test_a_database_is_due_when_it_can_have_news(
    record: Record | None, now: datetime, kw: dict[str, object], expected: tuple[str, datetime, int] | None
) -> None:
    assert reason(record, now, **kw) == expected


def test_no_schedule_hours_one_backup_a_day_is_expected() -> None:
    record = quiet(database=replace(quiet().database, scheduled_hours=()), last_usable_at=at(27, 1))  # type: ignore[type-var]
    assert reason(record, at(27, 7)) is None
    assert reason(record, at(28, 1, 15)) == ("slot", at(28, 1), SLOT)


def test_sweep_zero_reads_every_database_at_every_check() -> None:
    found = due(quiet(), at(27, 2, 15), POLICY, 0)
    assert found is not None
    assert (found.reason, found.urgency) == ("every check", SWEEP)


def test_the_most_urgent_reason_wins() -> None:
    # an incident and a slot at once: the incident (retries first)
    record = quiet(incidents={"failed": INCIDENT}, read_at=at(27, 23))
    assert reason(record, at(28, 1, 15)) == ("incident", at(28, 0), RETRY)


def test_read_at_is_written_at_most_hourly() -> None:
    record = quiet()
    assert with_read_at(record, at(27, 2, 59)) is record
    assert with_read_at(record, at(27, 3)).read_at == at(27, 3)
    assert with_read_at(Record(key="k"), at(27, 3)).read_at == at(27, 3)
