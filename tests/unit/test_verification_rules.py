"""Archive verification's pure rules: which backup is due, and what is announced. No clock, no network."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from backup_monitor.archives import Outcome, Verdict
from backup_monitor.config import Policy
from backup_monitor.records import Record, record_from_json, record_to_json
from backup_monitor.rules import Kind, Phase, Severity, apply, apply_all
from backup_monitor.scalingo.models import Backup
from backup_monitor.verification_rules import (
    UNREADABLE_KEY,
    VerifyPolicy,
    announce,
    due_backup,
    newest_usable,
    record_verdict,
    verified_notice,
)

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
POLICY = Policy()
WEEKLY = VerifyPolicy(every_days=7, max_bytes=5_000_000_000)
OK = Verdict(Outcome.OK, "", "gzip, tar and PostgreSQL dump checked")
BAD = Verdict(Outcome.FAILED, "gzip_corrupt", "the gzip CRC check fails: the data is corrupt")
TOO_BIG = Verdict(Outcome.NOT_RUN, "too_big", "the archive (7.0 GB) is larger than VERIFY_MAX_GB (5 GB)")
STALLED = Verdict(Outcome.NOT_RUN, "stalled", "the download stalled after 10 bytes")


def backup(days_ago: float, status: str = "done", size: int | None = 1000, bid: str | None = None) -> Backup:
    created = NOW - timedelta(days=days_ago)
    return Backup(bid or f"b{days_ago}", created, status, name=f"{created:%Y%m%d%H%M%S}_db", size=size)


def deliver(record: Record, now: datetime) -> Record:
    """The record after every announcement was delivered."""
    return apply_all(record, announce(record, now, POLICY), now)


def test_newest_usable_skips_failed_and_empty_backups() -> None:
    backups = [backup(0, "error"), backup(0.5, size=0), backup(1), backup(2)]
    assert newest_usable(backups) == backups[2]
    assert newest_usable([backup(0, "running")]) is None


def test_newest_usable_skips_a_suspiciously_small_backup_as_the_rules_do() -> None:
    history = [backup(day, size=1000) for day in range(2, 9)]
    small = backup(1, size=100)
    assert newest_usable([*history, small]) == history[0]
    assert newest_usable([*history, small], size_drop_ratio=0.05) == small


def test_a_database_never_verified_is_due_with_its_newest_usable_backup() -> None:
    backups = [backup(1), backup(0.2)]
    assert due_backup(Record("k"), backups, NOW, WEEKLY) == backups[1]


def test_verification_off_means_nothing_is_ever_due() -> None:
    assert due_backup(Record("k"), [backup(1)], NOW, VerifyPolicy(every_days=0)) is None


def test_at_most_once_per_period() -> None:
    # GIVEN a verification two days ago WHEN a newer backup appears THEN it waits for the period
    record = record_verdict(Record("k"), backup(3), OK, NOW - timedelta(days=2))
    newer = [backup(3), backup(0.5)]
    assert due_backup(record, newer, NOW, WEEKLY) is None
    assert due_backup(record, newer, NOW + timedelta(days=5), WEEKLY) == newer[1]


def test_the_same_backup_is_not_verified_twice() -> None:
    record = record_verdict(Record("k"), backup(3), OK, NOW - timedelta(days=30))
    assert due_backup(record, [backup(3)], NOW, WEEKLY) is None


def test_an_open_unreadable_archive_makes_the_next_backup_due_at_once() -> None:
    record = deliver(record_verdict(Record("k"), backup(2), BAD, NOW - timedelta(hours=5)), NOW - timedelta(hours=5))
    assert UNREADABLE_KEY in record.incidents
    newer = [backup(2), backup(0.1)]
    assert due_backup(record, newer, NOW, WEEKLY) == newer[1]


def test_a_verification_that_could_not_run_is_retried_after_a_day() -> None:
    record = record_verdict(Record("k"), backup(1), STALLED, NOW - timedelta(hours=3))
    assert due_backup(record, [backup(1)], NOW, WEEKLY) is None
    assert due_backup(record, [backup(1)], NOW + timedelta(hours=22), WEEKLY) == backup(1)


def test_a_too_big_archive_is_not_tried_again_but_a_new_backup_is() -> None:
    record = record_verdict(Record("k"), backup(1), TOO_BIG, NOW - timedelta(days=2))
    assert due_backup(record, [backup(1)], NOW, WEEKLY) is None
    assert due_backup(record, [backup(1), backup(0.1)], NOW, WEEKLY) == backup(0.1)


def test_a_failed_verification_opens_one_critical_incident_naming_what_failed() -> None:
    record = record_verdict(Record("k"), backup(1), BAD, NOW)
    (notice,) = announce(record, NOW, POLICY)
    assert (notice.kind, notice.phase, notice.severity, notice.mention) == (
        Kind.ARCHIVE_UNREADABLE,
        Phase.OPEN,
        Severity.CRITICAL,
        True,
    )
    assert notice.detail == BAD.detail
    assert notice.backup is not None
    assert notice.backup.id == "b1"
    # WHEN delivered THEN nothing more is said until a reminder is due
    after = apply(record, notice, NOW)
    assert announce(after, NOW + timedelta(hours=1), POLICY) == []
    (reminder,) = announce(after, NOW + timedelta(hours=24), POLICY)
    assert reminder.phase is Phase.REMIND


def test_another_unreadable_archive_updates_the_open_incident() -> None:
    first = deliver(record_verdict(Record("k"), backup(8), BAD, NOW - timedelta(days=1)), NOW - timedelta(days=1))
    second = record_verdict(first, backup(1), BAD, NOW)
    (notice,) = announce(second, NOW, POLICY)
    assert (notice.phase, notice.backup.id if notice.backup else None) == (Phase.UPDATE, "b1")


def test_a_later_passing_verification_resolves_it() -> None:
    opened = deliver(record_verdict(Record("k"), backup(2), BAD, NOW - timedelta(days=1)), NOW - timedelta(days=1))
    passed = record_verdict(opened, backup(0.5), OK, NOW)
    (notice,) = announce(passed, NOW, POLICY)
    assert (notice.kind, notice.phase) == (Kind.ARCHIVE_UNREADABLE, Phase.RESOLVE)
    assert deliver(passed, NOW).incidents == {}


def test_could_not_run_is_said_once_as_a_warning_never_a_page() -> None:
    record = record_verdict(Record("k"), backup(1), TOO_BIG, NOW)
    (notice,) = announce(record, NOW, POLICY)
    assert (notice.kind, notice.severity, notice.mention) == (Kind.VERIFY_SKIPPED, Severity.WARNING, False)
    said = apply(record, notice, NOW)
    # THEN the same reason a week (and a day) later is not said again, and never reminded
    later = record_verdict(said, backup(0.1), TOO_BIG, NOW + timedelta(days=8))
    assert announce(later, NOW + timedelta(days=8), POLICY) == []
    # WHEN another reason comes up THEN it is said once too
    stalled = record_verdict(later, backup(0.1), STALLED, NOW + timedelta(days=9))
    assert [n.kind for n in announce(stalled, NOW + timedelta(days=9), POLICY)] == [Kind.VERIFY_SKIPPED]


def test_a_verification_that_runs_forgets_earlier_reasons_silently() -> None:
    record = deliver(record_verdict(Record("k"), backup(1), STALLED, NOW), NOW)
    assert any(k.startswith("verify_skipped:") for k in record.incidents)
    passed = record_verdict(record, backup(1), OK, NOW + timedelta(days=1))
    assert passed.incidents == {}
    assert passed.verify_skipped is None
    assert announce(passed, NOW + timedelta(days=1), POLICY) == []


def test_an_undelivered_announcement_is_made_again_from_the_record() -> None:
    record = record_verdict(Record("k"), backup(1), BAD, NOW)
    assert announce(record, NOW + timedelta(minutes=15), POLICY) == announce(record, NOW, POLICY)


def test_the_success_notice_is_info_and_carries_what_was_checked() -> None:
    notice = verified_notice(backup(1), OK)
    assert (notice.kind, notice.severity, notice.detail) == (Kind.ARCHIVE_VERIFIED, Severity.INFO, OK.detail)


@pytest.mark.parametrize("verdict", [OK, BAD, TOO_BIG])
def test_verifications_survive_the_json_round_trip(verdict: Verdict) -> None:
    record = record_verdict(Record("k", first_seen_at=NOW), backup(1), verdict, NOW)
    data = record_to_json(record)
    assert record_from_json("k", data, 0) == replace(record, version=0)


def test_records_without_verification_keep_their_json_unchanged() -> None:
    assert "verified" not in record_to_json(Record("k"))
    assert "verify_skipped" not in record_to_json(Record("k"))
