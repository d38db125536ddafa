"""Alerts on-call can trust (issue 8): one named row per point, and the "one page, never resolved" property.

Each row is a story told to the pure rules with the clock passed in. `got` lists what on-call would read:
`kind:phase`, with `!` when the message calls people (the mention).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backup_monitor.config import ConfigError, Policy, Settings
from backup_monitor.records import Incident, Record
from backup_monitor.rules import (
    BACKUP_OUTAGE,
    Evaluation,
    Kind,
    Phase,
    apply_all,
    evaluate,
    evaluate_failure,
    evaluate_gone,
    implausible_answer,
    with_database,
)
from backup_monitor.scalingo.models import Backup, Database, MaintenanceWindow, parse_backup, parse_database

POLICY = Policy()
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)  # a Friday
NIGHTLY_IDS = [f"n{d}" for d in range(20, 27)]  # see NIGHTLY below
# A database watched for a month whose listed backups were all announced already.
KNOWN = Record(
    key="osc-fr1/shop/ad-1",
    first_seen_at=NOW - timedelta(days=30),
    handled=dict.fromkeys([*NIGHTLY_IDS, "a", "b", "old"], "done"),
)


def at(day: int, hour: float, minute: int = 0) -> datetime:
    """2026-11-<day> at hour:minute UTC."""
    return datetime(2026, 11, day, tzinfo=UTC) + timedelta(hours=hour, minutes=minute)


def db(*hours: int, **changes: object) -> Database:
    base = Database("db1", "shop-1", "postgresql", True, tuple(hours), status="running")
    return replace(base, **changes)  # type: ignore[arg-type]


def bk(bid: str, created: datetime, status: str = "done", size: int | None = 1000, **kw: object) -> Backup:
    return Backup(bid, created, status, started_at=kw.pop("started", created), size=size, **kw)  # type: ignore[arg-type]


def got(ev: Evaluation) -> list[str]:
    return [f"{n.kind.value}:{n.phase.value}{'!' if n.mention else ''}" for n in ev.notices]


def after(record: Record, database: Database, backups: list[Backup], now: datetime) -> Record:
    """The record once a check at `now` delivered everything."""
    return evaluate(record, database, backups, now, POLICY).next_record


def missing_incident(slot: datetime, opened: datetime) -> Incident:
    return Incident("missing", opened, opened, None, slot, "")


@dataclass(frozen=True)
class Story:
    record: Record
    database: Database
    backups: list[Backup]
    now: datetime
    expect: list[str]
    check: Callable[[Evaluation], bool] | None = None
    policy: Policy = POLICY


NIGHTLY = [bk(f"n{d}", at(d, 1)) for d in range(20, 27)]  # a usable backup every night at 01:00 until the 26th

STORIES = {
    # 1. A slot is filled only by a usable backup.
    "p1-backups-that-never-finish-page-once-as-missing": Story(
        KNOWN,
        db(1),
        [*NIGHTLY, bk("r27", at(27, 1), "running")],
        at(27, 9),
        ["stuck:open", "missing:open!"],
    ),
    "p1-a-backup-running-within-the-stuck-limit-fills-its-slot": Story(
        KNOWN, db(1), [*NIGHTLY, bk("r27", at(27, 1), "running")], at(27, 4, 30), []
    ),
    "p1-an-empty-done-backup-leaves-its-slot-missing": Story(
        KNOWN, db(1), [*NIGHTLY, bk("z27", at(27, 1), size=0)], at(27, 9), ["suspicious:open", "missing:open!"]
    ),
    "p1-a-failed-slot-pages-once-for-failed-and-missing": Story(
        KNOWN, db(1), [*NIGHTLY, bk("f27", at(27, 1), "error")], at(27, 9), ["failed:open!", "missing:open"]
    ),
    # 2. A failure is closed only by a later usable backup.
    "p2-a-failure-followed-only-by-an-empty-backup-is-a-page-on-first-sight": Story(
        KNOWN,
        db(1),
        [*NIGHTLY[:-1], bk("f26", at(26, 1), "error"), bk("z27", at(27, 1), size=0)],
        at(27, 2),
        ["failed:open!", "suspicious:open", "missing:open"],
    ),
    "p2-an-empty-later-backup-does-not-resolve-an-open-failure": Story(
        after(KNOWN, db(1), [*NIGHTLY[:-1], bk("f26", at(26, 1), "error")], at(26, 2)),
        db(1),
        [*NIGHTLY[:-1], bk("f26", at(26, 1), "error"), bk("z27", at(27, 1), size=0)],
        at(27, 2),
        ["failed:remind", "suspicious:open", "missing:open"],
    ),
    "p2-a-later-usable-backup-resolves-the-failure": Story(
        after(KNOWN, db(1), [*NIGHTLY[:-1], bk("f26", at(26, 1), "error")], at(26, 2)),
        db(1),
        [*NIGHTLY[:-1], bk("f26", at(26, 1), "error"), bk("ok27", at(27, 1))],
        at(27, 2),
        ["failed:resolve", "succeeded:notice"],
    ),
    # 3. Several schedule hours: each slot needs its own backup.
    "p3-the-01h-backup-does-not-fill-the-02h-slot": Story(
        KNOWN, db(1, 2), [bk("a", at(26, 2)), bk("b", at(27, 1))], at(27, 6), ["missing:open!"]
    ),
    "p3-a-backup-belongs-to-its-nearest-slot": Story(
        KNOWN, db(1, 13), [bk("a", at(27, 1)), bk("late", at(27, 13, 40))], at(27, 17), ["succeeded:notice"]
    ),
    "p3-the-13h-slot-is-missing-when-only-the-01h-backup-ran": Story(
        KNOWN,
        db(1, 13),
        [bk("a", at(27, 1))],
        at(27, 17),
        ["missing:open!"],
        check=lambda ev: ev.notices[0].slot == at(27, 13),
    ),
    # 5. New databases: no slot before the database existed.
    "p5-a-database-created-at-10h-is-not-expected-at-its-first-midnight": Story(
        Record(key="k"), db(0, created_at=at(26, 10)), [], at(27, 2, 30), []
    ),
    "p5-a-new-database-is-expected-at-the-next-slot-plus-the-grace": Story(
        after(Record(key="k"), db(0, created_at=at(26, 10)), [], at(27, 2, 30)),
        db(0, created_at=at(26, 10)),
        [],
        at(27, 3, 1),
        ["missing:open!"],
    ),
    "p5-without-created-at-the-first-sighting-stands-in": Story(Record(key="k"), db(1), [], at(27, 9), []),
    # 6. Late schedule hours: the latest due slot, however far back.
    "p6-a-23h-slot-missing-stays-open-across-midnight": Story(
        replace(KNOWN, incidents={"missing": missing_incident(at(25, 23), at(26, 2))}),
        db(23),
        [bk("old", at(24, 23))],
        at(27, 0, 30),
        [],
    ),
    "p6-the-next-missed-23h-slot-updates-without-a-mention": Story(
        replace(KNOWN, incidents={"missing": missing_incident(at(25, 23), at(26, 2))}),
        db(23),
        [bk("old", at(24, 23))],
        at(27, 2, 1),
        ["missing:update"],
    ),
    # 11. New statuses.
    "p11-an-unknown-status-on-a-young-backup-is-in-progress": Story(
        KNOWN, db(1), [*NIGHTLY, bk("v27", at(27, 1), "verifying")], at(27, 4, 30), []
    ),
    "p11-an-unknown-status-that-persists-is-a-failure": Story(
        KNOWN, db(1), [*NIGHTLY, bk("v27", at(27, 1), "verifying")], at(27, 7, 30), ["failed:open!", "missing:open"]
    ),
    "p11-unknown-then-done-is-announced-as-a-success": Story(
        after(KNOWN, db(1), [*NIGHTLY, bk("v27", at(27, 1), "verifying")], at(27, 2)),
        db(1),
        [*NIGHTLY, bk("v27", at(27, 1), "done")],
        at(27, 3),
        ["succeeded:notice"],
    ),
    # 13. Messages: the two documented reasons Scalingo skips a backup.
    "p13-missing-says-the-database-is-not-running": Story(
        KNOWN,
        db(1, status="stopped"),
        NIGHTLY,
        at(27, 9),
        ["missing:open!"],
        check=lambda ev: any("stopped" in r for r in ev.notices[0].reasons),
    ),
    "p13-missing-says-the-slot-fell-in-the-maintenance-window": Story(
        KNOWN,
        db(1, maintenance=MaintenanceWindow(5, 0, 4)),  # Fridays (Go: Sunday = 0) 00:00 UTC for 4 h
        NIGHTLY,
        at(27, 9),
        ["missing:open!"],
        check=lambda ev: any("maintenance window (Fridays 00:00 UTC for 4 h)" in r for r in ev.notices[0].reasons),
    ),
    "p13-a-slot-outside-the-maintenance-window-gives-no-reason": Story(
        KNOWN,
        db(1, maintenance=MaintenanceWindow(3, 21, 8)),
        NIGHTLY,
        at(27, 9),
        ["missing:open!"],
        check=lambda ev: ev.notices[0].reasons == (),
    ),
    "p13-periodic-backups-switched-off-close-missing-with-that-reason": Story(
        replace(KNOWN, incidents={"missing": missing_incident(at(27, 1), at(27, 4))}),
        db(1, periodic_backups_enabled=False),
        NIGHTLY,
        at(27, 9),
        ["periodic_off:open", "missing:resolve"],
        check=lambda ev: "switched off" in ev.notices[1].detail,
    ),
}


@pytest.mark.parametrize("name", list(STORIES))
def test_story(name: str) -> None:
    story = STORIES[name]
    ev = evaluate(story.record, story.database, story.backups, story.now, story.policy)
    assert got(ev) == story.expect
    if story.check is not None:
        assert story.check(ev), ev.notices


# -- rows that are not one evaluation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        pytest.param("MISSING_BACKUP_GRACE_HOURS", "24", id="p4-a-grace-of-a-day-would-silence-missing"),
        pytest.param("MISSING_BACKUP_GRACE_HOURS", "48", id="p4-a-grace-of-two-days"),
        pytest.param("STUCK_BACKUP_HOURS", "25", id="p4-a-stuck-limit-above-a-day-hides-the-next-slot"),
        pytest.param("STUCK_BACKUP_HOURS", "0.1", id="p4-a-stuck-limit-of-minutes"),
        pytest.param("SIZE_DROP_RATIO", "1", id="p4-a-ratio-of-one-flags-half-of-all-backups"),
        pytest.param("REMIND_EVERY_HOURS", "0.2", id="p4-a-reminder-at-every-check"),
        pytest.param("LOOKBACK_HOURS", "-1", id="p4-a-negative-lookback"),
        pytest.param("DISCOVERY_EVERY_HOURS", "1000", id="p4-a-discovery-that-never-sees-new-databases"),
        pytest.param("EXCLUDE_APPS", "a b", id="p9-an-exclude-pattern-with-a-space"),
    ],
)
def test_p4_settings_that_hide_alarms_are_refused(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"SCALINGO_API_TOKEN": "tk-us-x", variable: value})
    assert caught.value.variable == variable


def test_p7_ids_missing_from_a_short_answer_are_not_announced_again() -> None:
    full = [bk("f24", at(24, 1), "error"), *NIGHTLY[-2:], bk("ok27", at(27, 1))]
    first = after(Record(key="k"), db(1), full, at(27, 2))
    short = after(first, db(1), full[-1:], at(27, 3))
    assert set(short.absent_since) == {"f24", "n25", "n26"}
    back = evaluate(short, db(1), full, at(27, 4), POLICY)
    assert got(back) == []


def test_p7_an_answer_listing_none_of_the_known_backups_is_a_failed_read() -> None:
    record = after(KNOWN, db(1), NIGHTLY, at(27, 0))
    now = at(27, 1)
    assert implausible_answer(record, db(1), [], now, POLICY) is not None
    assert implausible_answer(record, db(1), [bk("other", at(27, 1))], now, POLICY) is not None
    assert implausible_answer(record, db(1), NIGHTLY[-1:], now, POLICY) is None
    assert implausible_answer(Record(key="new"), db(1), [], now, POLICY) is None  # no age known
    young = db(1, created_at=at(26, 20))
    assert implausible_answer(Record(key="new"), young, [], now, POLICY) is None  # too young for backups


def test_p7_handled_ids_are_bounded() -> None:
    many = {f"old{i}": "done" for i in range(1000)}
    absent = {f"old{i}": at(20, 0) + timedelta(minutes=i) for i in range(1000)}
    record = replace(KNOWN, handled={**many, "n26": "done"}, absent_since=absent)
    base = evaluate(record, db(1), NIGHTLY[-1:], at(26, 2), POLICY).base
    assert len(base.handled) <= 400
    assert "n26" in base.handled
    assert "old999" in base.handled  # the most recently absent are kept


def test_p8_a_deleted_database_closes_its_incidents_and_is_said_once() -> None:
    record = replace(
        KNOWN,
        incidents={
            "missing": missing_incident(at(27, 1), at(27, 4)),
            "failed": Incident("failed", at(26, 2), at(26, 2), "f26", at(26, 1)),
        },
    )
    ev = evaluate_gone(record, at(27, 9), "its addon or its app was deleted")
    assert got(ev) == ["failed:resolve", "missing:resolve", "gone:notice"]
    assert all(not n.mention for n in ev.notices)
    assert ev.next_record.incidents == {}
    assert ev.next_record.retired_at == at(27, 9)


def test_p12_a_started_at_in_year_1_is_absent() -> None:
    raw = {"id": "b", "created_at": "2026-11-27T07:00:00Z", "status": "running", "started_at": "0001-01-01T00:00:00Z"}
    backup = parse_backup(raw, "b")
    assert backup.started_at is None
    ev = evaluate(KNOWN, db(1), [*NIGHTLY, backup], at(27, 9), POLICY)
    assert "stuck:open" not in got(ev)  # its age counts from created_at, 2 h


def test_p5_p13_database_fields_are_read_from_the_api() -> None:
    payload = {
        "database": {
            "id": "x",
            "periodic_backups_enabled": True,
            "periodic_backups_scheduled_at": [1],
            "created_at": "2019-02-05T14:52:06.456+01:00",
            "status": "stopped",
            "maintenance_window": {"weekday_utc": 3, "starting_hour_utc": 21, "duration_in_hour": 8},
        }
    }
    parsed = parse_database(payload)
    assert parsed.created_at == datetime(2019, 2, 5, 13, 52, 6, 456000, tzinfo=UTC)
    assert parsed.maintenance == MaintenanceWindow(3, 21, 8)
    assert Database.from_json(parsed.to_json()) == parsed


def test_p13_one_check_in_a_row_is_singular() -> None:
    ev = evaluate_failure(KNOWN, "refused (401)", NOW, POLICY, permanent=True)
    assert ev.notices[0].detail.endswith("(1 check in a row)")


def test_p9_review_apps_are_excluded_by_default() -> None:
    settings = Settings.from_env({"SCALINGO_API_TOKEN": "tk-us-x"})
    assert settings.excluded("shop-pr42")
    assert not settings.excluded("shop-prod")
    assert not Settings.from_env({"SCALINGO_API_TOKEN": "tk-us-x", "EXCLUDE_APPS": ""}).excluded("shop-pr42")
    custom = Settings.from_env({"SCALINGO_API_TOKEN": "tk-us-x", "EXCLUDE_APPS": "staging-*, *-tmp"})
    assert custom.excluded("staging-api")
    assert not custom.excluded("shop-pr42")


# -- the property: when backups stop, one page and no false "resolved" ------------------------------------

BAD_KINDS = ["none", "error", "cancelled", "unknown", "empty", "hangs"]


def _as_listed(kind: str, slot: datetime, now: datetime, bid: str) -> Backup | None:
    """What the list shows at `now` of the backup Scalingo attempted at `slot` (None: not made, or not yet)."""
    if kind == "none" or now < slot:
        return None
    running = now < slot + timedelta(minutes=20)
    final = {"error": "error", "cancelled": "cancelled", "unknown": "vanished", "empty": "done", "hangs": "running"}
    status = "running" if running and kind != "unknown" else final[kind]
    return bk(bid, slot, status, size=0 if kind == "empty" else None)


@st.composite
def outages(draw: st.DrawFn) -> tuple[tuple[int, ...], list[str], list[tuple[float, str]]]:
    hours = tuple(sorted(set(draw(st.lists(st.integers(0, 23), min_size=1, max_size=2)))))
    attempts = draw(st.lists(st.sampled_from(BAD_KINDS), min_size=8, max_size=8))
    checks = draw(
        st.lists(
            st.tuples(st.floats(0, 96, allow_nan=False), st.sampled_from(["ok", "ok", "down", "short", "empty"])),
            min_size=1,
            max_size=25,
        )
    )
    return hours, attempts, sorted(checks)


@settings(max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "300")), deadline=None)
@given(outage=outages())
def test_when_usable_backups_stop_on_call_is_paged_exactly_once_and_never_told_resolved(
    outage: tuple[tuple[int, ...], list[str], list[tuple[float, str]]],
) -> None:
    # GIVEN a database with a usable backup at every slot for a week, after which none is usable again
    hours, attempts, checks = outage
    database = db(*hours)
    start = at(23, 0)
    history = [bk(f"h{d}-{h}", at(d, h), size=1000) for d in range(16, 23) for h in hours]
    slots = [at(d, h) for d in range(23, 28) for h in hours][: len(attempts)]
    record = Record(key="k", first_seen_at=at(1, 0), handled={b.id: "done" for b in history})
    pages = 0
    # WHEN checks run at random times, some of them with the API down or answering short or empty lists,
    # and a last clean check once every attempt has settled (past its grace and STUCK_BACKUP_HOURS)
    for offset, glitch in [*checks, (130.0, "ok")]:
        now = start + timedelta(hours=offset)
        listed = list(history)
        for i, (kind, slot) in enumerate(zip(attempts, slots, strict=False)):
            shown = _as_listed(kind, slot, now, f"a{i}")
            if shown is not None:
                listed.append(shown)
        if glitch == "short":
            listed = listed[len(listed) // 2 :]
        elif glitch == "empty":
            listed = []
        problem = implausible_answer(record, database, listed, now, POLICY)
        refused = problem is not None and (not problem[1] or record.api_failures + 1 < POLICY.cannot_check_after)
        if glitch == "down" or refused:
            ev = evaluate_failure(record, problem[0] if problem else "down", now, POLICY, permanent=False)
        else:
            ev = evaluate(record, database, listed, now, POLICY)
        for notice in ev.notices:
            # THEN the backups' outage never reads as resolved, and exactly one message calls people about it
            if notice.kind in BACKUP_OUTAGE:
                assert notice.phase is not Phase.RESOLVE, notice
                pages += notice.mention
        record = apply_all(ev.base, ev.notices, now)
    assert pages == 1
    assert {kind.value for kind in BACKUP_OUTAGE} & set(record.incidents)


def test_a_missed_slot_resolves_only_with_a_usable_backup() -> None:
    # GIVEN a missing incident, WHEN only a young running backup appears, THEN it stays open
    opened = replace(KNOWN, incidents={"missing": missing_incident(at(27, 1), at(27, 4))})
    running = [*NIGHTLY, bk("manual", at(27, 8, 30), "running")]
    assert got(evaluate(opened, db(1), running, at(27, 9), POLICY)) == []
    done = [*NIGHTLY, bk("manual", at(27, 8, 30))]
    ev = evaluate(opened, db(1), done, at(27, 9), POLICY)
    assert got(ev) == ["succeeded:notice", "missing:resolve"]
    assert ev.next_record.last_usable_at == at(27, 8, 30)
    assert Kind.MISSING.value not in ev.next_record.incidents


def test_p10_a_moved_schedule_expects_no_slot_before_the_change_was_seen() -> None:
    # GIVEN a database backed up at 00:00 whose schedule moved to 13:00 on the 26th in the afternoon
    history = [bk(f"m{d}", at(d, 0)) for d in range(20, 27)]
    cached = after(replace(KNOWN, handled={}), db(0), history, at(26, 12))
    cached = replace(cached, database=db(0))
    # WHEN the next night's check reads the new schedule
    fresh = with_database(cached, db(13), at(27, 3, 30))
    # THEN neither the old 00:00 slot nor the 13:00 slot that passed before the change is expected
    assert fresh.schedule_since == at(27, 3, 30)
    assert got(evaluate(fresh, db(13), history, at(27, 3, 30), POLICY)) == []
    # AND the first 13:00 slot after the change is
    assert got(evaluate(fresh, db(13), history, at(28, 16, 1), POLICY)) == ["missing:open!"]
    # AND an unchanged schedule keeps what was known
    assert with_database(cached, db(0), at(27, 3, 30)).schedule_since is None


@pytest.mark.parametrize(
    ("variable", "value", "refused"),
    [
        ("SCALINGO_API_URL", "http://api.example.com/{region}", True),
        ("SCALINGO_DB_API_URL", "http://db-api.example.com", True),
        ("SCALINGO_AUTH_URL", "http://auth.example.com", True),
        ("SLACK_API_URL", "http://slack.example.com/api/", True),
        ("SLACK_WEBHOOK_URL", "http://hooks.example.com/services/T/B/secret-part", True),
        ("SCALINGO_API_URL", "http://127.0.0.1:8080/{region}", False),
        ("SCALINGO_DB_API_URL", "http://localhost:8080", False),
        ("SLACK_WEBHOOK_URL", "http://[::1]:9000/services/T/B/x", False),
        ("SCALINGO_API_URL", "https://api.example.com/{region}", False),
    ],
)
def test_plain_http_outside_loopback_is_refused(variable: str, value: str, refused: bool) -> None:
    # Tokens, the webhook's secret path and download links would cross the network in clear.
    env = {"SCALINGO_API_TOKEN": "tk-us-x", variable: value}
    if not refused:
        assert Settings.from_env(env)
        return
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert caught.value.variable == variable
    assert "secret-part" not in str(caught.value)


def test_a_plain_http_webhook_read_from_ssm_is_refused() -> None:
    settings = Settings.from_env({"SCALINGO_API_TOKEN": "tk-us-x", "SLACK_WEBHOOK_URL_PARAMETER": "/bm/hook"})
    with pytest.raises(ConfigError) as caught:
        settings.with_secrets(None, "http://hooks.example.com/services/T/B/secret-part", None)
    assert caught.value.variable == "SLACK_WEBHOOK_URL_PARAMETER"
    assert "secret-part" not in str(caught.value)
