"""The detection rules, one behaviour per test; the clock is a parameter, nothing touches the network."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backup_monitor.config import Policy
from backup_monitor.records import Record
from backup_monitor.rules import Evaluation, Kind, Notice, Phase, apply_all, evaluate, evaluate_failure
from backup_monitor.scalingo.models import Backup, Database

POLICY = Policy()
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
DB = Database("db1", "shop-1", "postgresql", True, (1,))
KNOWN = Record(key="osc-fr1/shop/ad-1", first_seen_at=NOW - timedelta(days=30))


def bk(bid: str, hours_ago: float, status: str = "done", size: int | None = 100, **kw: object) -> Backup:
    created = NOW - timedelta(hours=hours_ago)
    return Backup(bid, created, status, started_at=kw.pop("started", created), size=size, **kw)  # type: ignore[arg-type]


def kinds(ev: Evaluation) -> list[tuple[str, str]]:
    return [(n.kind.value, n.phase.value) for n in ev.notices]


def only(ev: Evaluation, kind: Kind) -> Notice:
    (found,) = [n for n in ev.notices if n.kind is kind]
    return found


def run(record: Record, backups: list[Backup], now: datetime = NOW, db: Database = DB, policy: Policy = POLICY):  # type: ignore[no-untyped-def]
    return evaluate(record, db, backups, now, policy)


TODAY = [bk("today", 8)]  # 01:00 today


def test_a_new_failed_backup_opens_a_critical_incident_with_a_mention() -> None:
    ev = run(KNOWN, [bk("old", 32), bk("f", 8, "error")])
    # The failed 01:00 backup leaves the slot without a usable backup: one page, the "missing" part is quiet.
    assert kinds(ev) == [("failed", "open"), ("succeeded", "notice"), ("missing", "open")]
    opened = ev.notices[0]
    assert opened.mention
    assert opened.severity.value == "critical"
    assert not only(ev, Kind.MISSING).mention


def test_a_failure_followed_by_a_success_resolves_the_incident() -> None:
    first = run(KNOWN, [bk("old", 32), bk("f", 8, "error")]).next_record
    ev = run(first, [bk("old", 32), bk("f", 8, "error"), bk("manual", 1)], now=NOW)
    assert ("failed", "resolve") in kinds(ev)
    assert "failed" not in ev.next_record.incidents


def test_a_failure_already_followed_by_a_success_is_a_notice_without_incident() -> None:
    ev = run(KNOWN, [bk("f", 32, "error"), bk("ok", 8)])
    assert ("failed", "notice") in kinds(ev)
    assert "failed" not in ev.next_record.incidents


@pytest.mark.parametrize("status", ["cancelled", "cancelling-failed", "exploded", "error"])
def test_unknown_statuses_past_the_stuck_limit_and_cancelled_ones_are_failures(status: str) -> None:
    ev = run(KNOWN, [bk("x", 8, status)])
    assert ev.notices[0].kind is Kind.FAILED
    assert ev.notices[0].backup is not None
    assert ev.notices[0].backup.status == status


def test_a_second_failure_updates_the_open_incident() -> None:
    first = run(KNOWN, [bk("f1", 32, "error")], now=NOW - timedelta(hours=24)).next_record
    ev = run(first, [bk("f1", 32, "error"), bk("f2", 8, "error")])
    assert ("failed", "update") in kinds(ev)
    assert ("failed", "open") not in kinds(ev)


def test_a_backup_id_is_announced_once() -> None:
    ev = run(KNOWN, [bk("f", 8, "error")])
    again = run(ev.next_record, [bk("f", 8, "error")], now=NOW + timedelta(hours=1))
    assert again.notices == ()


def test_reminders_follow_remind_every_hours_and_zero_disables_them() -> None:
    off = Database("db1", "r", "postgresql", True, ())  # no schedule: keep the missing-backup rule quiet a while
    rec = evaluate(KNOWN, off, [bk("ok", 12), bk("f", 10, "error")], NOW, POLICY).next_record
    same = [bk("ok", 12), bk("f", 10, "error")]
    assert evaluate(rec, off, same, NOW + timedelta(hours=7), POLICY).notices == ()
    later = evaluate(rec, off, same, NOW + timedelta(hours=8), Policy(remind_every_hours=8))
    assert kinds(later) == [("failed", "remind")]
    never = Policy(remind_every_hours=0)
    assert evaluate(rec, off, same, NOW + timedelta(hours=8), never).notices == ()


def test_on_first_sight_old_backups_are_recorded_silently() -> None:
    new = Record(key="k")
    ev = run(new, [bk("ancient-fail", 24 * 5, "error"), bk("old-ok", 72), bk("f", 8, "error")])
    assert kinds(ev) == [("failed", "open")]
    assert {"ancient-fail", "old-ok"} <= set(ev.base.handled)


def test_a_missing_daily_backup_is_critical_after_the_grace() -> None:
    ev = run(KNOWN, [bk("yesterday", 32)])  # 01:00 yesterday; today's 01:00 slot is 8 h old
    assert only(ev, Kind.MISSING).phase is Phase.OPEN
    assert only(ev, Kind.MISSING).slot == datetime(2026, 11, 27, 1, tzinfo=UTC)


def test_a_backup_within_the_grace_is_not_missing_yet() -> None:
    ev = run(KNOWN, [bk("yesterday", 26)], now=datetime(2026, 11, 27, 3, 30, tzinfo=UTC))
    assert ("missing", "open") not in kinds(ev)


def test_a_slot_across_midnight_is_yesterdays() -> None:
    db = Database("db1", "r", "postgresql", True, (23,))
    now = datetime(2026, 11, 27, 2, 30, tzinfo=UTC)  # the 23:00 slot was yesterday, 3.5 h ago
    ev = evaluate(KNOWN, db, [bk("older", 40)], now, POLICY)
    assert only(ev, Kind.MISSING).slot == datetime(2026, 11, 26, 23, tzinfo=UTC)
    ok = evaluate(KNOWN, db, [Backup("y", datetime(2026, 11, 26, 23, 5, tzinfo=UTC), "done", size=100)], now, POLICY)
    assert ("missing", "open") not in kinds(ok)


def test_several_scheduled_hours_check_the_latest_due_slot() -> None:
    db = Database("db1", "r", "postgresql", True, (1, 13))
    now = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)
    at_one = Backup("a", datetime(2026, 11, 27, 1, tzinfo=UTC), "done", size=100)
    ev = evaluate(KNOWN, db, [at_one], now, POLICY)
    assert only(ev, Kind.MISSING).slot == datetime(2026, 11, 27, 13, tzinfo=UTC)


@pytest.mark.parametrize("offset", [-8, 0, 1, 2, 5.5, 14])
def test_created_at_offsets_are_compared_in_utc(offset: float) -> None:
    tz = timezone(timedelta(hours=offset))
    created = datetime(2026, 11, 27, 1, 10, tzinfo=UTC).astimezone(tz)
    ev = run(KNOWN, [Backup("t", created, "done", size=100)])
    assert ("missing", "open") not in kinds(ev)


def test_a_missing_slot_later_filled_resolves() -> None:
    rec = run(KNOWN, [bk("yesterday", 32)]).next_record
    ev = run(rec, [bk("yesterday", 32), bk("late", 0.5)], now=NOW + timedelta(minutes=1))
    assert ("missing", "resolve") in kinds(ev)


def test_without_a_schedule_a_day_without_success_is_missing() -> None:
    db = Database("db1", "r", "mysql", True, ())
    assert ("missing", "open") not in kinds(evaluate(KNOWN, db, [bk("a", 20)], NOW, POLICY))
    ev = evaluate(KNOWN, db, [bk("a", 28)], NOW, POLICY)
    assert ("missing", "open") in kinds(ev)


def test_a_backup_running_too_long_is_stuck_until_final() -> None:
    rec = run(KNOWN, [bk("r", 7, "running")]).next_record
    assert "stuck:r" in rec.incidents
    ev = run(rec, [bk("r", 7, "done")], now=NOW + timedelta(minutes=15))
    assert ("stuck", "resolve") in kinds(ev)
    assert ("succeeded", "notice") in kinds(ev)


def test_a_zero_byte_done_backup_is_suspicious_and_fills_no_slot() -> None:
    ev = run(KNOWN, [bk("z", 8, size=0)])
    assert kinds(ev) == [("suspicious", "open"), ("missing", "open")]


def test_a_size_drop_below_the_ratio_of_the_median_is_suspicious() -> None:
    history = [bk(f"h{i}", 8 + 24 * i, size=1000) for i in range(1, 8)]
    rec = Record(key="k", first_seen_at=KNOWN.first_seen_at, handled={b.id: "done" for b in history})
    ev = run(rec, [*history, bk("small", 8, size=400)])
    assert kinds(ev) == [("suspicious", "open"), ("missing", "open")]
    assert ev.notices[0].median_size == 1000


def test_the_size_check_works_with_fewer_than_seven_earlier_backups() -> None:
    history = [bk("h1", 32, size=1000), bk("h2", 56, size=1200)]
    rec = Record(key="k", first_seen_at=KNOWN.first_seen_at, handled={b.id: "done" for b in history})
    assert kinds(run(rec, [*history, bk("ok", 8, size=900)])) == [("succeeded", "notice")]
    assert kinds(run(rec, [*history, bk("bad", 8, size=100)])) == [("suspicious", "open"), ("missing", "open")]


def test_a_later_normal_backup_resolves_a_suspicious_one() -> None:
    rec = run(KNOWN, [bk("h", 32, size=1000), bk("z", 8, size=0)]).next_record
    ev = run(rec, [bk("h", 32, size=1000), bk("z", 8, size=0), bk("m", 1, size=1000)])
    assert ("suspicious", "resolve") in kinds(ev)


def test_periodic_backups_switched_off_then_on() -> None:
    off = Database("db1", "r", "redis", False, (1,))
    rec = evaluate(KNOWN, off, TODAY, NOW, POLICY).next_record
    assert "periodic_off" in rec.incidents
    ev = evaluate(rec, DB, TODAY, NOW + timedelta(hours=1), POLICY)
    assert kinds(ev) == [("periodic_off", "resolve")]


def test_three_api_failures_then_a_success() -> None:
    rec = KNOWN
    phases = []
    for i in range(3):
        ev = evaluate_failure(
            rec, "Scalingo kept answering 500", NOW + timedelta(minutes=15 * i), POLICY, permanent=False
        )
        phases.append(kinds(ev))
        rec = ev.next_record
    assert phases == [[], [], [("cannot_check", "open")]]
    ok = run(rec, TODAY, now=NOW + timedelta(hours=1))
    assert only(ok, Kind.CANNOT_CHECK).phase is Phase.RESOLVE
    assert ok.next_record.api_failures == 0


def test_an_authentication_failure_is_critical_at_once() -> None:
    ev = evaluate_failure(KNOWN, "refused (401)", NOW, POLICY, permanent=True)
    assert kinds(ev) == [("cannot_check", "open")]


def test_handled_ids_are_forgotten_a_week_after_scalingo_stops_listing_them() -> None:
    rec = Record(key="k", first_seen_at=KNOWN.first_seen_at, handled={"gone": "done", "today": "done"})
    first = run(rec, TODAY).base
    assert set(first.handled) == {"gone", "today"}
    assert first.absent_since == {"gone": NOW}
    week = run(first, TODAY, now=NOW + timedelta(days=7)).base
    assert set(week.handled) == {"today"}
    assert week.absent_since == {}


# -- properties -----------------------------------------------------------------------------------------

STATUSES = st.sampled_from(["done", "done", "done", "error", "running", "pending", "scheduled", "cancelled", "odd"])


@st.composite
def backup_lists(draw: st.DrawFn) -> list[Backup]:
    n = draw(st.integers(0, 12))
    backups = []
    for i in range(n):
        hours_ago = draw(st.floats(0, 24 * 10, allow_nan=False))
        size = draw(st.one_of(st.none(), st.integers(0, 2000)))
        backups.append(bk(f"b{i}", hours_ago, draw(STATUSES), size))
    return backups


@st.composite
def databases(draw: st.DrawFn) -> Database:
    hours = tuple(sorted(set(draw(st.lists(st.integers(0, 23), max_size=3)))))
    return Database("db", "r", "postgresql", draw(st.booleans()), hours)


@settings(max_examples=200, deadline=None)
@given(backups=backup_lists(), db=databases(), first=st.booleans())
def test_evaluating_again_with_the_produced_record_is_quiet(backups: list[Backup], db: Database, first: bool) -> None:
    record = Record(key="k") if first else KNOWN
    ev = evaluate(record, db, backups, NOW, POLICY)
    again = evaluate(ev.next_record, db, backups, NOW, POLICY)
    assert again.notices == ()
    assert again.base.content() == ev.next_record.content()


@settings(max_examples=100, deadline=None)
@given(universe=backup_lists(), db=databases(), fails=st.lists(st.booleans(), min_size=1, max_size=8))
def test_no_backup_id_is_announced_twice(universe: list[Backup], db: Database, fails: list[bool]) -> None:
    # Backups appear as time passes (ids and times stable), checks every 6 hours, some with the API down.
    record = Record(key="k")
    announced: set[str] = set()
    start = NOW - timedelta(days=10)
    for step, api_fails in enumerate(fails):
        now = start + timedelta(hours=6 * (step + 1) * 5)
        listed = [b for b in universe if b.created_at <= now]
        if api_fails:
            ev = evaluate_failure(record, "down", now, POLICY, permanent=False)
        else:
            ev = evaluate(record, db, listed, now, POLICY)
        for n in ev.notices:
            if (
                n.backup is not None
                and n.phase in (Phase.OPEN, Phase.UPDATE, Phase.NOTICE)
                and n.kind is not Kind.STUCK
            ):
                assert n.backup.id not in announced
                announced.add(n.backup.id)
        record = apply_all(ev.base, ev.notices, now)
