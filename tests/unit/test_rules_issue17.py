"""Every alert right, and enough in it to act on (issue 17): one named row per numbered point.

Each row tells a story to the pure parts (the rules, the discovery merge) with the clock passed in. `got` lists
what on-call would read: `kind:phase`, with `!` when the message calls people (the mention).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from backup_monitor.check.model import Clients
from backup_monitor.check.targets import RETIRE_AFTER, Targets, advance
from backup_monitor.config import Policy, Settings, Target
from backup_monitor.records import Incident, Record
from backup_monitor.rules import (
    CAUSE_ADDON,
    CAUSE_SCALINGO,
    Evaluation,
    Kind,
    apply_all,
    evaluate,
    evaluate_failure,
    implausible_answer,
    reannounced,
    rewatched,
)
from backup_monitor.scalingo.errors import NotFoundError
from backup_monitor.scalingo.models import Backup, Database, DiscoveredDatabase
from backup_monitor.state.base import load_renamed
from backup_monitor.state.sqlite import SqliteStateStore

POLICY = Policy()


def at(day: int, hour: float, minute: int = 0) -> datetime:
    """2026-11-<day> at hour:minute UTC."""
    return datetime(2026, 11, day, tzinfo=UTC) + timedelta(hours=hour, minutes=minute)


def db(*hours: int, **changes: object) -> Database:
    base = Database("db1", "shop-1", "postgresql", True, tuple(hours), status="running", created_at=at(1, 0))
    return replace(base, **changes)  # type: ignore[arg-type]


def bk(bid: str, created: datetime, status: str = "done", size: int | None = 1000, **kw: object) -> Backup:
    return Backup(bid, created, status, started_at=created, size=size, **kw)  # type: ignore[arg-type]


def got(ev: Evaluation) -> list[str]:
    return [f"{n.kind.value}:{n.phase.value}{'!' if n.mention else ''}" for n in ev.notices]


def nightly(days: range, hour: int = 1) -> list[Backup]:
    return [bk(f"n{d}", at(d, hour), method="periodic") for d in days]


def watched(backups: list[Backup], now: datetime, database: Database | None = None) -> Record:
    """The record of a database watched for weeks, after a check at `now` delivered everything."""
    record = Record(key="osc-fr1/ad-1", first_seen_at=at(1, 0))
    return evaluate(record, database or db(1), backups, now, POLICY).next_record


def found(*names: str) -> list[DiscoveredDatabase]:
    out = []
    for name in names:
        region, app, addon = name.split("/")
        out.append(DiscoveredDatabase(region, app, addon, f"{app}-1", "postgresql"))
    return out


SETTINGS = Settings()


# -- 1. retirement needs evidence, and ends --------------------------------------------------------------------


class Listing:
    """Scalingo's discovery answers, in process (the pass logic is what is tested, not HTTP): `apps` per
    region, each with its listed databases."""

    def __init__(self, *names: str) -> None:
        self.set(*names)
        self.requests = 0
        self.gone: frozenset[str] = frozenset()  # apps whose addons answer 404

    def set(self, *names: str) -> None:
        self.databases = found(*names)
        self.apps = {(d.region, d.app) for d in self.databases}

    def list_apps(self, region: str, **_: object) -> list[str]:
        self.requests += 1
        return sorted({app for r, app in self.apps if r == region})

    def list_addons(self, region: str, app: str) -> list[DiscoveredDatabase]:
        self.requests += 1
        if app in self.gone:
            raise NotFoundError(f"GET /v1/apps/{app}/addons: 404")
        return [d for d in self.databases if (d.region, d.app) == (region, app)]

    def has_time(self) -> bool:
        return True


def walk(listing: Listing, record: Record | None, now: datetime, allowance: int | None = None, **kw: object) -> Targets:
    clients = Clients(listing, None, None)  # type: ignore[arg-type]  # nothing is saved: save=False
    return advance(SETTINGS, clients, now, Targets(record=record), allowance=allowance, save=False, **kw)  # type: ignore[arg-type]


def test_17_1_one_discovery_miss_retires_nothing_a_second_an_hour_later_does() -> None:
    listing = Listing("osc-fr1/shop/ad-1", "osc-fr1/blog/ad-2")
    first = walk(listing, None, at(27, 8))
    assert first.record is not None
    # GIVEN one answer leaves blog out THEN it stays watched, marked as first left out now
    listing.set("osc-fr1/shop/ad-1")
    again = walk(listing, first.record, at(27, 9), regions=("osc-fr1",))
    assert again.retired == []
    assert "osc-fr1/blog/ad-2" in again.record.discovered  # type: ignore[union-attr]
    assert again.record.unlisted == {"osc-fr1/ad-2": at(27, 9)}  # type: ignore[union-attr]
    # WHEN a pass within the hour leaves it out again THEN still watched
    within = walk(listing, again.record, at(27, 9, 30), regions=("osc-fr1",))
    assert within.retired == []
    # WHEN a pass an hour after the first miss leaves it out THEN it is retired (once) and dropped
    later = walk(listing, within.record, at(27, 9) + RETIRE_AFTER, regions=("osc-fr1",))
    assert later.retired == [Target("osc-fr1", "blog", "ad-2")]
    assert later.record.discovered == {"osc-fr1/shop/ad-1": "postgresql"}  # type: ignore[union-attr]
    assert later.record.unlisted == {}  # type: ignore[union-attr]


def test_17_1_a_listing_in_between_resets_the_evidence() -> None:
    listing = Listing("osc-fr1/blog/ad-2")
    record = walk(listing, None, at(27, 8)).record
    listing.set()
    record = walk(listing, record, at(27, 9), regions=("osc-fr1",)).record
    listing.set("osc-fr1/blog/ad-2")
    record = walk(listing, record, at(27, 10), regions=("osc-fr1",)).record
    assert record is not None
    assert record.unlisted == {}
    listing.set()
    assert walk(listing, record, at(27, 11), regions=("osc-fr1",)).retired == []  # a first miss again


def test_17_1_another_regions_answer_never_retires_this_regions_databases() -> None:
    listing = Listing("osc-fr1/shop/ad-1")
    record = Record(
        key="d",
        discovered={"osc-fr1/shop/ad-1": "postgresql", "osc-secnum-fr1/bank/ad-9": "postgresql"},
        unlisted={"osc-secnum-fr1/ad-9": at(27, 0)},
    )
    result = walk(listing, record, at(27, 9), regions=("osc-fr1",))
    assert result.retired == []
    assert "osc-secnum-fr1/bank/ad-9" in result.record.discovered  # type: ignore[union-attr]


def test_18_1_a_pass_carries_on_across_checks_and_lists_what_it_reached_at_once() -> None:
    listing = Listing(*(f"osc-fr1/app-{i:02d}/ad-{i:02d}" for i in range(10)))
    # GIVEN 4 requests a check THEN the app list and 3 apps are listed, and watched at once
    first = walk(listing, None, at(27, 8), allowance=4)
    assert [t.app for t in first.watched] == ["app-00", "app-01", "app-02"]
    assert first.record is not None
    assert len(first.record.pass_todo) == 7
    # WHEN the next checks go on THEN the pass is not restarted (no app list again) and ends after 7 more
    second = walk(listing, first.record, at(27, 8, 15), allowance=4)
    assert len(second.watched) == 7
    assert listing.requests == 8
    third = walk(listing, second.record, at(27, 8, 30), allowance=4)
    assert len(third.watched) == 10
    assert third.record is not None
    assert third.record.pass_todo == ()
    assert third.record.pass_completed == {"osc-fr1": at(27, 8, 30)}
    assert third.record.database_fetched_at == at(27, 8, 30)
    # AND no pass starts again before DISCOVERY_EVERY_HOURS
    assert walk(listing, third.record, at(27, 9), allowance=4).watched == third.watched
    assert listing.requests == 11


def test_18_1_a_pass_retires_only_at_its_end_and_new_apps_go_first() -> None:
    names = [f"osc-fr1/app-{i:02d}/ad-{i:02d}" for i in range(6)]
    listing = Listing(*names)
    record = walk(listing, None, at(27, 0)).record
    # GIVEN app-00 is renamed (its database listed under new-app) and app-05 deleted, at the start of a pass
    listing.set("osc-fr1/new-app/ad-00", *names[1:5])
    step = walk(listing, record, at(27, 6), allowance=2)
    # THEN the new app is listed first: the database is renamed, not left out
    assert Target("osc-fr1", "new-app", "ad-00") in step.watched
    assert step.record is not None
    assert step.record.unlisted == {"osc-fr1/ad-05": at(27, 6)}
    assert step.retired == []
    # WHEN the pass ends more than an hour later THEN nothing is retired: one pass left it out, not two
    end = walk(listing, step.record, at(27, 7, 30))
    assert end.retired == []
    # WHEN the next pass leaves it out too THEN it is retired, once
    again = walk(listing, end.record, at(27, 13, 30))
    assert again.retired == [Target("osc-fr1", "app-05", "ad-05")]
    assert walk(listing, again.record, at(27, 19, 30)).retired == []


def test_18_1_an_app_deleted_in_the_middle_of_a_pass_does_not_stop_it() -> None:
    listing = Listing(*(f"osc-fr1/app-{i:02d}/ad-{i:02d}" for i in range(6)))
    first = walk(listing, None, at(27, 0), allowance=3)  # the app list and 2 apps
    # GIVEN app-03 is deleted after the app list was read (its addons now answer 404)
    listing.set(*(f"osc-fr1/app-{i:02d}/ad-{i:02d}" for i in range(6) if i != 3))
    listing.gone = frozenset({"app-03"})
    rest = walk(listing, first.record, at(27, 0, 15))
    # THEN the pass goes on past it and ends
    assert rest.record is not None
    assert rest.record.pass_todo == ()
    assert len(rest.watched) == 5


def test_17_1_a_retired_database_listed_again_is_watched_again_without_replaying_old_backups() -> None:
    backups = nightly(range(20, 27))
    record = replace(watched(backups, at(26, 9)), retired_at=at(26, 12))
    again = rewatched(record)
    assert again.retired_at is None
    # THEN the backups seen before are not announced again, and nothing pages
    assert [n for n in got(evaluate(again, db(1), backups, at(26, 20), POLICY)) if "!" in n] == []
    assert Kind.SUCCEEDED.value not in " ".join(got(evaluate(again, db(1), backups, at(26, 20), POLICY)))


# -- 2. identity is the addon ----------------------------------------------------------------------------------


def test_17_2_the_state_key_is_the_addon_and_a_rename_keeps_it() -> None:
    assert Target("osc-fr1", "shop", "ad-1").key == Target("osc-fr1", "shop-renamed", "ad-1").key == "osc-fr1/ad-1"
    listing = Listing("osc-fr1/shop/ad-1")
    record = walk(listing, None, at(27, 8)).record
    listing.set("osc-fr1/boutique/ad-1")
    result = walk(listing, record, at(27, 9), regions=("osc-fr1",))
    assert result.record is not None
    assert (result.retired, result.record.discovered, result.record.unlisted) == (
        [],
        {"osc-fr1/boutique/ad-1": "postgresql"},
        {},
    )


def test_17_2_a_record_stored_under_the_old_key_is_adopted_unchanged(tmp_path: Path) -> None:
    store = SqliteStateStore(str(tmp_path / "state.sqlite3"))
    target = Target("osc-fr1", "shop", "ad-1")
    old = watched(nightly(range(20, 27)), at(26, 9))
    store.save(replace(old, key=target.name), at(26, 9).timestamp())
    adopted: set[str] = set()
    records = load_renamed(store, {target.key: target.name}, adopted=adopted)
    assert adopted == {target.key}
    record = records[target.key]
    assert (record.key, record.version) == (target.key, 0)
    assert record.content() == old.content()  # nothing forgotten: nothing is announced again


# -- 3. known facts survive a short answer ---------------------------------------------------------------------


def test_17_3_a_slot_a_usable_backup_filled_stays_filled_when_an_answer_omits_it() -> None:
    backups = nightly(range(20, 28))
    record = watched(backups, at(27, 5))
    assert record.filled_slot == at(27, 1)
    # WHEN the next answer omits the newest backup (confirmed as data: the third time in a row)
    short = evaluate(replace(record, api_failures=2), db(1), backups[:-1], at(27, 6), POLICY)
    assert got(short) == []


def test_17_3_an_answer_omitting_a_backup_of_the_last_day_while_listing_older_ones_is_not_data() -> None:
    backups = nightly(range(20, 28))
    record = watched(backups, at(27, 5))
    reason = implausible_answer(record, db(1), backups[:-1], at(27, 6), POLICY)
    assert reason is not None  # a failed read, that repeated answers can confirm
    assert reason[1]
    # an answer that only lost the oldest (retention) is data
    assert implausible_answer(record, db(1), backups[1:], at(27, 6), POLICY) is None


def test_17_3_an_empty_answer_at_first_sight_of_an_old_database_is_not_data() -> None:
    reason = implausible_answer(Record(key="k"), db(1), [], at(27, 6), POLICY)
    assert reason is not None
    assert reason[1]
    young = db(1, created_at=at(27, 0))
    assert implausible_answer(Record(key="k"), young, [], at(27, 6), POLICY) is None


# -- 4. manual backups -----------------------------------------------------------------------------------------


def test_17_4_a_cancelled_manual_backup_is_a_warning_not_a_page() -> None:
    backups = [*nightly(range(20, 28)), bk("m1", at(27, 10), "cancelled", method="manual")]
    record = watched(backups[:-1], at(27, 9))
    assert got(evaluate(record, db(1), backups, at(27, 11), POLICY)) == ["manual_cancelled:notice"]
    # a cancelled periodic backup still pages
    periodic = [*nightly(range(20, 27)), bk("p27", at(27, 1), "cancelled", method="periodic")]
    record = watched(periodic[:-1], at(26, 9))
    assert "failed:open!" in got(evaluate(record, db(1), periodic, at(27, 5), POLICY))


def test_17_4_a_manual_backup_fills_a_slot_only_within_the_grace_of_it() -> None:
    hours_before = [*nightly(range(20, 27)), bk("m", at(26, 20), method="manual")]
    record = watched(hours_before, at(26, 21))
    # THEN the skipped 01:00 periodic backup is paged at 01:00 + grace, not a day late
    assert got(evaluate(record, db(1), hours_before, at(27, 4, 5), POLICY)) == ["missing:open!"]
    close = [*nightly(range(20, 27)), bk("m", at(26, 23), method="manual")]
    record = watched(close, at(26, 23, 30))
    assert got(evaluate(record, db(1), close, at(27, 4, 5), POLICY)) == []


def test_17_4_a_manual_backup_after_the_alert_closes_it_for_good() -> None:
    backups = nightly(range(20, 27))
    opened = watched(backups, at(27, 4, 5))
    assert "missing" in opened.incidents
    fixed = [*backups, bk("m", at(27, 9), method="manual")]
    ev = evaluate(opened, db(1), fixed, at(27, 9, 30), POLICY)
    assert sorted(got(ev)) == ["missing:resolve", "succeeded:notice"]
    assert got(evaluate(ev.next_record, db(1), fixed, at(27, 10), POLICY)) == []


# -- 5. never any backup ---------------------------------------------------------------------------------------


def test_17_5_never_any_backup_reminders_follow_remind_every_hours() -> None:
    quiet = replace(POLICY, remind_every_hours=0)
    record = Record(key="k", first_seen_at=at(1, 0))
    first = evaluate(record, db(1), [], at(20, 5), quiet)
    assert got(first) == ["missing:open!"]
    record = first.next_record
    for day in range(21, 27):  # every later day: nothing (a new slot missed is no news)
        ev = evaluate(record, db(1), [], at(day, 5), quiet)
        assert got(ev) == [], day
        record = ev.next_record
    daily = evaluate(first.next_record, db(1), [], at(21, 5, 30), POLICY)
    assert got(daily) == ["missing:remind"]


# -- 6. point-in-time recovery ---------------------------------------------------------------------------------


def test_17_6_pitr_behind_pages_once_and_closes_when_it_catches_up() -> None:
    record = watched(nightly(range(20, 28)), at(27, 5))
    behind = replace(record, pitr_latest=at(27, 2), pitr_read_at=at(27, 9))
    ev = evaluate(behind, db(1), nightly(range(20, 28)), at(27, 9), POLICY)
    assert got(ev) == ["pitr_behind:open!"]
    assert ev.notices[0].restore_point == at(27, 2)
    caught_up = replace(ev.next_record, pitr_latest=at(27, 9, 50))
    assert got(evaluate(caught_up, db(1), nightly(range(20, 28)), at(27, 10), POLICY)) == ["pitr_behind:resolve"]


def test_17_6_healthy_pitr_with_dumps_off_is_said_once_not_every_day() -> None:
    off = db(1, periodic_backups_enabled=False)
    record = replace(Record(key="k", first_seen_at=at(1, 0)), pitr_latest=at(20, 8))
    ev = evaluate(record, off, [], at(20, 9), POLICY)
    assert got(ev) == ["pitr_only:open"]
    record = ev.next_record
    for day in range(21, 28):
        ev = evaluate(replace(record, pitr_latest=at(day, 8)), off, [], at(day, 9), POLICY)
        assert got(ev) == [], day
        record = ev.next_record
    # without PITR the same database is told periodic backups are off (and reminded)
    assert got(evaluate(Record(key="k", first_seen_at=at(1, 0)), off, [], at(20, 9), POLICY)) == ["periodic_off:open"]


# -- 7. alerts that carry the facts ----------------------------------------------------------------------------


def test_17_7_every_alert_says_when_the_newest_usable_backup_was_made() -> None:
    backups = nightly(range(20, 26))
    record = watched(backups, at(25, 9))
    ev = evaluate(record, db(1), backups, at(27, 4, 5), POLICY)
    assert got(ev) == ["missing:open!"]
    assert ev.notices[0].last_usable_at == at(25, 1)
    failed = evaluate_failure(replace(ev.next_record, api_failures=2), "HTTP 500", at(27, 5), POLICY, permanent=False)
    assert failed.notices[0].last_usable_at == at(25, 1)


def test_17_7_a_slot_whose_backup_is_stuck_or_too_small_says_so() -> None:
    backups = [*nightly(range(20, 27)), bk("run", at(27, 1), "running")]
    ev = evaluate(watched(backups[:-1], at(26, 9)), db(1), backups, at(27, 7, 30), POLICY)
    missing = next(n for n in ev.notices if n.kind is Kind.MISSING)
    assert missing.slot_backup is not None
    assert missing.slot_backup.id == "run"
    small = [*nightly(range(20, 27)), bk("tiny", at(27, 1), size=10)]
    ev = evaluate(watched(small[:-1], at(26, 9)), db(1), small, at(27, 4, 5), POLICY)
    missing = next(n for n in ev.notices if n.kind is Kind.MISSING)
    assert missing.slot_backup is not None
    assert missing.slot_backup.id == "tiny"


def test_17_7_cannot_check_says_why_and_since_when() -> None:
    record = Record(key="k", first_seen_at=at(1, 0))
    for minute in (0, 15):
        record = evaluate_failure(record, "HTTP 500", at(27, 9, minute), POLICY, permanent=False).next_record
    ev = evaluate_failure(record, "HTTP 500", at(27, 9, 30), POLICY, permanent=False, cause=CAUSE_SCALINGO)
    assert got(ev) == ["cannot_check:open!"]
    assert (ev.notices[0].cause, ev.notices[0].failing_since) == (CAUSE_SCALINGO, at(27, 9))
    gone = evaluate_failure(Record(key="k"), "404", at(27, 9), POLICY, permanent=True, cause=CAUSE_ADDON)
    assert gone.notices[0].cause == CAUSE_ADDON


# -- 8. a new destination hears what is open -------------------------------------------------------------------


def test_17_8_open_incidents_are_announced_once_to_a_new_destination() -> None:
    opened = Incident("missing", at(27, 4), at(27, 4), None, at(27, 1), "No usable backup", destination="console")
    record = replace(watched(nightly(range(20, 27)), at(26, 9)), incidents={"missing": opened})
    ev = reannounced(evaluate(record, db(1), nightly(range(20, 27)), at(27, 5), POLICY), "webhook:abc")
    assert got(ev) == ["missing:open!"]
    assert ev.notices[0].reannounce
    assert ev.notices[0].opened_at == at(27, 4)
    after = apply_all(ev.base, ev.notices, at(27, 5))
    assert after.incidents["missing"].opened_at == at(27, 4)  # the same incident, not a new one
    # delivered there: the next check says nothing more
    stamped = replace(after, incidents={"missing": replace(after.incidents["missing"], destination="webhook:abc")})
    again = reannounced(evaluate(stamped, db(1), nightly(range(20, 27)), at(27, 6), POLICY), "webhook:abc")
    assert got(again) == []


def test_17_8_incidents_of_an_older_version_are_taken_as_announced_here() -> None:
    opened = Incident("missing", at(27, 4), at(27, 4), None, at(27, 1), "No usable backup")
    record = replace(watched(nightly(range(20, 27)), at(26, 9)), incidents={"missing": opened})
    ev = reannounced(evaluate(record, db(1), nightly(range(20, 27)), at(27, 5), POLICY), "webhook:abc")
    assert got(ev) == []
    assert ev.base.incidents["missing"].destination == "webhook:abc"


def test_17_6_a_recovery_window_that_cannot_be_read_ages_and_pages_behind() -> None:
    off = db(1, periodic_backups_enabled=False)
    # GIVEN PITR said once, then its window unreadable (reads fail: the record keeps the last one read)
    record = replace(Record(key="k", first_seen_at=at(1, 0)), pitr_latest=at(27, 2), pitr_read_at=at(27, 2))
    record = evaluate(record, off, [], at(27, 2, 5), POLICY).next_record
    assert got(evaluate(record, off, [], at(27, 7), POLICY)) == []  # 5 h: within the lag
    ev = evaluate(record, off, [], at(27, 8, 30), POLICY)
    assert got(ev) == ["pitr_behind:open!"]
    assert "could not be read since 2026-11-27 02:00 UTC" in ev.notices[0].detail
    # a stale read never closes it; a fresh one does
    stale = evaluate(ev.next_record, off, [], at(27, 9), POLICY)
    assert got(stale) == []
    fresh = replace(ev.next_record, pitr_latest=at(27, 9, 55), pitr_read_at=at(27, 10))
    assert got(evaluate(fresh, off, [], at(27, 10), POLICY)) == ["pitr_behind:resolve"]


def test_17_3_an_answer_taken_as_data_is_not_held_against_the_next_one() -> None:
    backups = nightly(range(20, 28))
    record = watched(backups, at(27, 5))
    # GIVEN the newest backup gone for good, the short answer taken as data (the third in a row)
    taken = evaluate(replace(record, api_failures=2), db(1), backups[:-1], at(27, 6), POLICY).next_record
    # THEN the same answer at the next check is data at once
    assert implausible_answer(taken, db(1), backups[:-1], at(27, 6, 15), POLICY) is None
