"""The daily report: DAILY_REPORT_AT parsing, when it is due (DST included), its content and Slack's limits."""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta

import pytest

from backup_monitor.config import ConfigError, ReportTime, Settings, Target
from backup_monitor.daily_report import due_date
from backup_monitor.records import Incident, Record, ThreadRef, Verification
from backup_monitor.report import MAX_BLOCKS, MAX_SECTION_CHARS, build_report, human_age, render_slack, render_text
from backup_monitor.scalingo.models import Database

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
PARIS = ReportTime(time(2, 30), "Europe/Paris")


def settings(**env: str) -> Settings:
    return Settings.from_env({"SCALINGO_API_TOKEN": "tk-test", **env})


# DAILY_REPORT_AT


def test_the_report_is_on_by_default_at_eight_utc() -> None:
    assert str(settings().daily_report) == "08:00 UTC"


@pytest.mark.parametrize("value", ["", "  ", "off", "OFF"])
def test_an_empty_daily_report_at_turns_the_report_off(value: str) -> None:
    assert settings(DAILY_REPORT_AT=value).daily_report is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("09:00 Europe/Paris", "09:00 Europe/Paris"),
        ("7:05 UTC", "07:05 UTC"),
        (" 23:59  America/New_York ", "23:59 America/New_York"),
    ],
)
def test_daily_report_at_reads_a_local_time_and_a_zone(value: str, expected: str) -> None:
    report = settings(DAILY_REPORT_AT=value).daily_report
    assert report is not None
    assert str(report) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("9h Europe/Paris", "must be HH:MM and a time zone"),
        ("24:00 UTC", "must be HH:MM and a time zone"),
        ("09:60 UTC", "must be HH:MM and a time zone"),
        ("09:00", "must be HH:MM and a time zone"),
        ("09:00 Europe/Atlantis", "'Europe/Atlantis' is not a known time zone"),
        ("09:00 ../../etc/passwd", "is not a known time zone"),
        ("09:00 CEST", "is not a known time zone"),
    ],
)
def test_a_bad_daily_report_at_is_a_clear_configuration_error(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings(DAILY_REPORT_AT=value)
    assert caught.value.variable == "DAILY_REPORT_AT"
    assert message in str(caught.value)


@pytest.fixture
def no_system_zones() -> Iterator[None]:
    """As on a Lambda image without /usr/share/zoneinfo: only the `tzdata` package can answer."""
    zoneinfo.reset_tzpath(to=[])
    zoneinfo.ZoneInfo.clear_cache()
    try:
        yield
    finally:
        zoneinfo.reset_tzpath()
        zoneinfo.ZoneInfo.clear_cache()


@pytest.mark.usefixtures("no_system_zones")
def test_time_zones_work_without_the_systems_zone_files() -> None:
    report = settings(DAILY_REPORT_AT="09:00 Europe/Paris").daily_report
    assert report is not None
    assert datetime(2026, 7, 1, 7, 0, tzinfo=UTC).astimezone(report.tz).hour == 9


# When it is due


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_due_from_the_local_time_until_the_end_of_the_local_day() -> None:
    nine_paris = ReportTime(time(9, 0), "Europe/Paris")  # 08:00 UTC in winter
    assert due_date(nine_paris, at("2026-11-27T07:59"), None) is None
    assert due_date(nine_paris, at("2026-11-27T08:00"), None) == "2026-11-27"
    assert due_date(nine_paris, at("2026-11-27T22:59"), None) == "2026-11-27"
    assert due_date(nine_paris, at("2026-11-27T23:00"), "2026-11-27") is None  # 00:00 on the 28th, before 09:00


def test_not_due_again_the_same_local_day_nor_for_a_day_already_reported() -> None:
    utc8 = ReportTime(time(8, 0), "UTC")
    assert due_date(utc8, at("2026-11-27T10:00"), "2026-11-27") is None
    assert due_date(utc8, at("2026-11-27T10:00"), "2026-11-28") is None  # a clock that went back: still nothing
    assert due_date(utc8, at("2026-11-27T10:00"), "2026-11-26") == "2026-11-27"


def test_a_local_date_is_the_zones_date_not_utcs() -> None:
    tokyo = ReportTime(time(8, 0), "Asia/Tokyo")  # UTC+9: 08:00 on the 28th is 23:00 UTC on the 27th
    assert due_date(tokyo, at("2026-11-27T23:00"), "2026-11-27") == "2026-11-28"


def test_summer_time_moves_the_report_with_the_local_clock() -> None:
    nine_paris = ReportTime(time(9, 0), "Europe/Paris")
    assert due_date(nine_paris, at("2026-07-01T06:59"), None) is None
    assert due_date(nine_paris, at("2026-07-01T07:00"), None) == "2026-07-01"  # CEST, UTC+2


def test_a_time_skipped_when_clocks_go_forward_is_reached_when_they_jump() -> None:
    # GIVEN 02:30 Paris, which does not exist on 2026-03-29 (02:00 CET -> 03:00 CEST at 01:00 UTC)
    assert due_date(PARIS, at("2026-03-29T00:59"), "2026-03-28") is None  # 01:59 CET
    assert due_date(PARIS, at("2026-03-29T01:00"), "2026-03-28") == "2026-03-29"  # 03:00 CEST


def test_a_time_that_occurs_twice_when_clocks_go_back_is_reached_the_first_time() -> None:
    # GIVEN 02:30 Paris, which happens twice on 2026-10-25 (03:00 CEST -> 02:00 CET at 01:00 UTC)
    assert due_date(PARIS, at("2026-10-25T00:29"), "2026-10-24") is None  # 02:29 CEST
    assert due_date(PARIS, at("2026-10-25T00:30"), "2026-10-24") == "2026-10-25"  # 02:30 CEST, the first one
    assert due_date(PARIS, at("2026-10-25T01:30"), "2026-10-25") is None  # 02:30 CET, the second: already sent


@pytest.mark.parametrize("start", ["2026-03-27T00:00", "2026-10-23T00:00"])
def test_checks_every_quarter_hour_across_a_dst_change_send_one_report_a_local_day(start: str) -> None:
    last: str | None = None
    sent: list[tuple[str, datetime]] = []
    moment = at(start)
    for _ in range(4 * 24 * 5):
        day = due_date(PARIS, moment, last)
        if day is not None:
            sent.append((day, moment))
            last = day
        moment += timedelta(minutes=15)
    days = [day for day, _ in sent]
    assert days == sorted(set(days))
    assert len(days) == 5
    for day, when in sent:
        local = when.astimezone(PARIS.tz)
        assert local.date().isoformat() == day
        assert local.time() >= time(2, 30)
        assert local.time() < time(3, 15)  # the first quarter-hour check at or after the time (03:00 on the jump)


# Content


def database(resource: str = "db-1", type_name: str = "PostgreSQL") -> Database:
    return Database("db-id", resource, type_name, True, (2,))


def incident(kind: str, opened: datetime, thread: ThreadRef | None = None) -> Incident:
    return Incident(kind, opened, opened, thread=thread)


def fleet_records() -> tuple[list[Target], dict[str, Record]]:
    targets = [Target("osc-fr1", app, f"ad-{app}") for app in ("shop", "billing", "blog", "new")]
    thread = ThreadRef("C0BACKUPS", "1700000001.000100")
    records = {
        targets[0].key: Record(targets[0].key, database=database("shop-1"), last_usable_at=NOW - timedelta(hours=7)),
        targets[1].key: Record(
            targets[1].key,
            database=database("billing-1"),
            last_usable_at=NOW - timedelta(days=1, hours=7),
            incidents={"failed": incident("failed", NOW - timedelta(hours=7), thread)},
        ),
        targets[2].key: Record(
            targets[2].key,
            database=database("blog-1", "MySQL"),
            last_usable_at=NOW - timedelta(days=3),
            incidents={
                "missing": incident("missing", NOW - timedelta(days=2, hours=1)),
                "stuck:b1": incident("stuck", NOW - timedelta(minutes=40)),
            },
        ),
    }
    return targets, records


def test_the_report_counts_fresh_backups_and_lists_open_incidents_worst_and_oldest_first() -> None:
    targets, records = fleet_records()
    report = build_report(settings(VERIFY_ARCHIVES_EVERY_DAYS="0"), targets, records, NOW)
    assert (report.watched, report.fresh, report.unknown) == (4, 1, 1)
    assert [d.app for d in report.stale] == ["billing", "blog"]  # 31 h and 3 d: older than 24 h + 3 h grace
    assert [(i.database.app, i.kind) for i in report.incidents] == [
        ("blog", "missing"),
        ("billing", "failed"),
        ("blog", "stuck"),
    ]
    assert report.critical == 2
    assert report.verify_every_days == 0  # switched off here: the "not enabled" wording


def test_the_slack_report_says_everything_with_ages_and_thread_links() -> None:
    targets, records = fleet_records()
    message = render_slack(
        build_report(
            settings(DAILY_REPORT_AT="10:00 Europe/Paris", VERIFY_ARCHIVES_EVERY_DAYS="0"), targets, records, NOW
        )
    )
    text = "\n".join(b["text"]["text"] for b in message.blocks if b["type"] == "section")
    assert "*Daily backup report* · Fri 27 Nov 2026, 10:00 Europe/Paris" in text
    assert "Databases watched: *4*" in text
    assert "Fresh usable backup (last 27 h): *1 of 4*" in text
    assert "1 not known yet" in text
    assert "Archive verification: not enabled" in text
    assert "Open incidents: *3* (2 critical, 1 warning)" in text
    assert "*Daily backup missing* on *blog* / blog-1 (MySQL, osc-fr1) · open 2 d 1 h" in text
    assert "· open 7 h · <https://slack.com/app_redirect?channel=C0BACKUPS|thread>" in text
    assert "*Backup stuck* on *blog* / blog-1 (MySQL, osc-fr1) · open 40 min" in text
    assert message.text == "Daily backup report: 4 databases, 1 with a fresh usable backup, 3 open incidents"


def test_a_quiet_fleet_reports_no_incident() -> None:
    target = Target("osc-fr1", "shop", "ad-shop")
    records = {target.key: Record(target.key, last_usable_at=NOW - timedelta(hours=2))}
    message = render_slack(build_report(settings(), [target], records, NOW))
    assert message.blocks[0]["text"]["text"].startswith(":white_check_mark: *Daily backup report*")
    assert "Open incidents: none" in message.blocks[0]["text"]["text"]


def test_scalingo_text_cannot_mention_or_link_anyone() -> None:
    target = Target("osc-fr1", "shop", "ad-shop")
    records = {
        target.key: Record(
            target.key,
            database=database("<!channel> & <https://evil.example|x>"),
            incidents={"failed": incident("failed", NOW)},
        )
    }
    message = render_slack(build_report(settings(), [target], records, NOW))
    text = str(message.blocks)
    assert "<!channel>" not in text
    assert "<https://evil" not in text
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|x&gt;" in text


def test_thousands_of_incidents_stay_within_slacks_limits() -> None:
    targets = [Target("osc-fr1", f"app-{i:04d}-{'x' * 60}", f"ad-{i:04d}") for i in range(2000)]
    records = {
        t.key: Record(t.key, database=database("r\U0001f642" * 20), incidents={"failed": incident("failed", NOW)})
        for t in targets
    }
    message = render_slack(build_report(settings(), targets, records, NOW))
    assert len(message.blocks) <= MAX_BLOCKS
    sections = [b["text"]["text"] for b in message.blocks if b["type"] == "section"]
    assert all(len(s.encode("utf-16-le")) // 2 <= MAX_SECTION_CHARS for s in sections)
    listed = sum(s.count(":red_circle: *Backup failed*") for s in sections[1:])
    assert 0 < listed < 2000
    assert f"…and {2000 - listed:,} more open incidents. `backup-monitor status --problems`" in sections[-1]


def test_the_terminal_report_has_one_line_per_database() -> None:
    targets, records = fleet_records()
    text = render_text(build_report(settings(VERIFY_ARCHIVES_EVERY_DAYS="0"), targets, records, NOW))
    lines = text.splitlines()
    assert lines[0] == "Backup report · Fri 27 Nov 2026, 09:00 UTC"
    table = lines[lines.index(next(x for x in lines if x.startswith("DATABASE"))) :]
    assert table[0].split() == ["DATABASE", "LAST", "USABLE", "BACKUP", "LAST", "VERIFICATION", "OPEN", "INCIDENTS"]
    assert table[1].split("  ")[0] == "osc-fr1/shop/ad-shop"
    assert "7 h ago" in table[1]
    assert table[1].rstrip().endswith("-")
    assert "31 h ago (stale)" in table[2]
    assert "backup failed (7 h)" in table[2]
    assert "daily backup missing (2 d 1 h), backup stuck (40 min)" in table[3]
    assert "never checked" in table[4]
    assert "not enabled" in table[1]
    assert "thread https://slack.com/app_redirect?channel=C0BACKUPS" in text


@pytest.mark.parametrize(
    ("age", "text"),
    [(timedelta(seconds=30), "0 min"), (timedelta(minutes=59), "59 min"), (timedelta(hours=47), "47 h"),
     (timedelta(days=2), "2 d"), (timedelta(days=3, hours=5), "3 d 5 h")],
)  # fmt: skip
def test_ages_read_naturally(age: timedelta, text: str) -> None:
    assert human_age(age) == text


# Archive verification (issue 12, part 1): read from Record.verified and VERIFY_ARCHIVES_EVERY_DAYS.


def verified(at: datetime, outcome: str, code: str = "", detail: str = "") -> Verification:
    return Verification("b1", "20261126010000_db", at - timedelta(hours=8), 1000, at, outcome, code, detail)


def test_archives_verified_in_the_period_and_failures_are_counted() -> None:
    targets = [Target("osc-fr1", app, f"ad-{app}") for app in ("a", "b", "c", "d")]
    records: dict[str, Record] = {
        targets[0].key: Record(targets[0].key, verified=verified(NOW - timedelta(days=1), "ok")),
        targets[1].key: Record(
            targets[1].key, verified=verified(NOW - timedelta(days=2), "failed", "gzip", "CRC check failed")
        ),
        targets[2].key: Record(targets[2].key, verified=verified(NOW - timedelta(days=9), "ok")),
        targets[3].key: Record(targets[3].key),
    }
    report = build_report(Settings(api_token="tk"), targets, records, NOW)
    assert (report.verify_every_days, report.verified, report.verify_failed) == (7.0, 2, 1)
    slack_text = render_slack(report).blocks[0]["text"]["text"]
    assert "Archives verified (last 7 days): *2*, failed: *1*" in slack_text
    rows = render_text(report).splitlines()[-4:]
    assert "24 h ago, ok" in rows[0]
    assert "2 d ago, FAILED: CRC check failed" in rows[1]
    assert "9 d ago, ok" in rows[2]
    assert "never" in rows[3]


def test_deleted_databases_are_not_watched_and_excluded_apps_are_counted() -> None:
    targets, records = fleet_records()
    retired = records[targets[1].key].evolve(retired_at=NOW - timedelta(days=1))
    report = build_report(settings(), targets, {**records, targets[1].key: retired}, NOW, excluded=2)
    assert report.watched == 3
    assert all(i.database.app != "billing" for i in report.incidents)
    assert "Databases watched: *3* (2 apps excluded by EXCLUDE_APPS)" in render_slack(report).blocks[0]["text"]["text"]


# Point-in-time recovery (issue 17): the latest restore point, and the PITR incidents.


def pitr_fleet() -> tuple[list[Target], dict[str, Record]]:
    """shop: dumps and PITR, fine; ledger: PITR 9 h behind; archive: periodic dumps off, covered by PITR."""
    targets = [Target("osc-fr1", app, f"ad-{app}") for app in ("shop", "ledger", "archive")]
    records = {
        targets[0].key: Record(
            targets[0].key,
            database=database("shop-1"),
            last_usable_at=NOW - timedelta(hours=7),
            pitr_latest=NOW - timedelta(minutes=3),
        ),
        targets[1].key: Record(
            targets[1].key,
            database=database("ledger-1"),
            last_usable_at=NOW - timedelta(hours=7),
            pitr_latest=NOW - timedelta(hours=9),
            incidents={"pitr_behind": incident("pitr_behind", NOW - timedelta(hours=3))},
        ),
        targets[2].key: Record(
            targets[2].key,
            database=database("archive-1"),
            last_usable_at=NOW - timedelta(days=20),
            pitr_latest=NOW - timedelta(minutes=4),
            incidents={"pitr_only": incident("pitr_only", NOW - timedelta(days=2))},
        ),
    }
    return targets, records


def test_the_report_shows_the_latest_restore_point_of_databases_with_pitr() -> None:
    targets, records = pitr_fleet()
    report = build_report(settings(VERIFY_ARCHIVES_EVERY_DAYS="0"), targets, records, NOW)
    text = render_slack(report).blocks[0]["text"]["text"]
    assert "Point-in-time recovery (restore point within 6 h): *2 of 3* (behind: *ledger* / ledger-1" in text
    # a database without a fresh dump says that PITR still covers it
    assert "not fresh: *archive* / archive-1 (PostgreSQL, osc-fr1) (latest restore point 4 min ago)" in text
    rows = render_text(report).splitlines()
    table = rows[rows.index(next(x for x in rows if x.startswith("DATABASE"))) :]
    assert "LATEST RESTORE POINT" in table[0]
    assert "3 min ago" in table[1]
    assert "9 h ago (behind)" in table[2]
    assert "4 min ago" in table[3]


def test_pitr_incidents_read_with_their_restore_point() -> None:
    targets, records = pitr_fleet()
    report = build_report(settings(VERIFY_ARCHIVES_EVERY_DAYS="0"), targets, records, NOW)
    slack = "\n".join(b["text"]["text"] for b in render_slack(report).blocks if b["type"] == "section")
    assert (
        ":red_circle: *Point-in-time recovery behind* on *ledger* / ledger-1 (PostgreSQL, osc-fr1) · open 3 h"
        " · latest restore point 9 h ago"
    ) in slack
    assert (
        ":large_orange_circle: *Periodic backups off (covered by point-in-time recovery)* on *archive* / archive-1"
        " (PostgreSQL, osc-fr1) · open 2 d · latest restore point 4 min ago"
    ) in slack
    assert (
        "By kind: 1 point-in-time recovery behind, 1 periodic backups off (covered by point-in-time recovery)" in slack
    )
    assert report.critical == 1
    text = render_text(report)
    assert (
        "[CRITICAL] Point-in-time recovery behind on ledger/ledger-1 (osc-fr1), open 3 h · latest restore point 9 h ago"
        in text
    )
    assert "point-in-time recovery behind (3 h)" in text


def test_a_fleet_without_pitr_has_no_restore_point_line_nor_column() -> None:
    targets, records = fleet_records()
    report = build_report(settings(VERIFY_ARCHIVES_EVERY_DAYS="0"), targets, records, NOW)
    assert "Point-in-time recovery" not in render_slack(report).blocks[0]["text"]["text"]
    assert "RESTORE POINT" not in render_text(report)
