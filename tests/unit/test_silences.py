"""silences.py (pure) and the rules that honour silences and acknowledgments."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from backup_monitor.config import Policy, Target
from backup_monitor.records import Incident, Record, record_from_json, record_to_json
from backup_monitor.rules import Evaluation, Kind, Notice, Phase, acknowledge, after_silence, muted, remind_notice
from backup_monitor.silences import (
    KEEP_ENDED,
    MAX_ACTIVE,
    MAX_BY,
    MAX_ENDED_KEPT,
    MAX_PATTERN,
    MAX_REASON,
    Silence,
    SilenceError,
    active,
    added,
    ended,
    matches,
    new_silence,
    parse_duration,
    pruned,
    silence_from_json,
    silence_to_json,
    silences_to_json,
    slack_who,
)

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
BILLING = Target("osc-fr1", "billing-api", "ad-1")


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("billing-*", True),
        ("billing-api", True),
        ("osc-fr1/billing-*", True),
        ("osc-secnum-fr1/billing-*", False),
        ("billing", False),
        ("Billing-*", False),  # case-sensitive, as EXCLUDE_APPS
        ("osc-fr1/ad-1", True),  # one database by its state key (a button)
        ("osc-fr1/ad-2", False),
        ("*", True),
    ],
)
def test_a_pattern_is_an_app_glob_optionally_in_a_region_or_a_database_key(pattern: str, expected: bool) -> None:
    assert matches(pattern, BILLING) is expected


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("30m", timedelta(minutes=30)),
        ("4h", timedelta(hours=4)),
        ("2d", timedelta(days=2)),
        (" 30d ", timedelta(days=30)),
    ],
)
def test_durations_read_minutes_hours_and_days(text: str, span: timedelta) -> None:
    assert parse_duration(text) == span


@pytest.mark.parametrize("text", ["31d", "721h", "0h", "4", "h", "4w", "-1h", "1.5h", ""])
def test_a_duration_over_30_days_or_unreadable_is_refused(text: str) -> None:
    with pytest.raises(SilenceError):
        parse_duration(text)


def silence(pattern: str = "billing-*", hours: float = 4, at: datetime = NOW, sid: str | None = None) -> Silence:
    return new_silence(pattern, timedelta(hours=hours), "migration", "cli:alice", at, silence_id=sid)


def test_a_silence_is_active_from_its_start_until_its_end_only() -> None:
    s = silence()
    assert len(s.id) == 8
    assert int(s.id, 16) >= 0
    assert active([s], BILLING, NOW) == s
    assert active([s], BILLING, NOW + timedelta(hours=3, minutes=59)) == s
    assert active([s], BILLING, NOW + timedelta(hours=4)) is None
    assert active([s], BILLING, NOW - timedelta(seconds=1)) is None
    assert active([s], Target("osc-fr1", "shop", "ad-9"), NOW) is None


def test_a_reason_is_required_and_the_pattern_must_be_readable() -> None:
    with pytest.raises(SilenceError, match="reason"):
        new_silence("x", timedelta(hours=1), "  ", "cli:a", NOW)
    for bad in ("", "a b", "osc-fr1/", "Bad Region/x", "a/b/c"):
        with pytest.raises(SilenceError):
            new_silence(bad, timedelta(hours=1), "r", "cli:a", NOW)
    with pytest.raises(SilenceError):
        new_silence("x", timedelta(days=30, seconds=1), "r", "cli:a", NOW)


def test_at_most_300_active_silences_ended_ones_do_not_count() -> None:
    many = tuple(silence(f"app-{n}", sid=f"{n:08x}") for n in range(MAX_ACTIVE))
    with pytest.raises(SilenceError, match="300 active"):
        added(many, silence("one-more"), NOW)
    later = NOW + timedelta(hours=5)  # all of them ended
    assert len(added(many, silence("one-more", at=later), later)) == min(MAX_ACTIVE, MAX_ENDED_KEPT) + 1


def test_the_fullest_silences_record_fits_in_one_dynamodb_item() -> None:
    """Every active silence and every ended one kept, each with the longest pattern, reason and author: the
    record stays well below DynamoDB's 400 KB item (its JSON is the item's largest attribute)."""
    reason, by = "r" * MAX_REASON, "cli:" + "b" * (MAX_BY - 4)
    fullest = [
        new_silence(f"{n:04d}" + "p" * (MAX_PATTERN - 4), timedelta(days=30), reason, by, NOW, silence_id=f"{n:08x}")
        for n in range(MAX_ACTIVE + MAX_ENDED_KEPT)
    ]
    size = len(json.dumps(silences_to_json(fullest)).encode())
    assert size < 300_000, size


def test_ended_silences_are_kept_seven_days_then_dropped() -> None:
    s = silence(hours=1)
    assert pruned([s], NOW + timedelta(hours=1) + KEEP_ENDED) == (s,)
    assert pruned([s], NOW + timedelta(hours=1, seconds=1) + KEEP_ENDED) == ()


def test_unsilence_ends_it_now_and_keeps_it_as_ended() -> None:
    s = silence()
    kept, stopped = ended([s], s.id, "U123", NOW + timedelta(hours=1))
    assert stopped.end == NOW + timedelta(hours=1)
    assert stopped.ended_by == "U123"
    assert kept == (stopped,)
    assert not stopped.is_active(NOW + timedelta(hours=1))
    with pytest.raises(KeyError):
        ended([s], "nope", "U123", NOW)


def test_the_json_form_round_trips() -> None:
    s = silence()
    _, stopped = ended([s], s.id, "U123", NOW + timedelta(minutes=5))
    for one in (s, stopped):
        assert silence_from_json(silence_to_json(one)) == one


def test_a_slack_user_is_mentioned_anything_else_is_escaped_text() -> None:
    assert slack_who("U0ABC123") == "<@U0ABC123>"
    assert slack_who("cli:<!channel>") == "cli:&lt;!channel&gt;"


# -- records ------------------------------------------------------------------------------------------------------


def test_records_without_the_new_fields_still_read_and_the_new_ones_round_trip() -> None:
    old = {"incidents": {"failed": {"kind": "failed", "opened_at": NOW.isoformat(), "last_notice_at": NOW.isoformat()}}}
    inc = record_from_json("k", old, 1).incidents["failed"]
    assert (inc.acknowledged_by, inc.acknowledged_at, inc.unannounced) == ("", None, False)
    record = Record(
        key="k",
        incidents={"failed": Incident("failed", NOW, NOW, acknowledged_by="U1", acknowledged_at=NOW, unannounced=True)},
        held={"missing": Incident("missing", NOW, NOW, detail="Backup b was made")},
        silences=(silence(),),
    )
    again = record_from_json("k", record_to_json(record), 1)
    assert (again.incidents, again.held, again.silences) == (record.incidents, record.held, record.silences)


# -- rules ------------------------------------------------------------------------------------------------------


POLICY = Policy()


def test_an_acknowledged_incident_gets_no_reminder() -> None:
    record = Record(key="k", incidents={"failed": Incident("failed", NOW, NOW)})
    later = NOW + timedelta(hours=POLICY.remind_every_hours + 1)
    assert remind_notice("failed", record.incidents["failed"], later, POLICY) is not None
    acked = acknowledge(record, "failed", "U1", NOW)
    assert remind_notice("failed", acked.incidents["failed"], later, POLICY) is None
    assert acknowledge(acked, "failed", "U2", later).incidents["failed"].acknowledged_by == "U1"  # the first stays
    with pytest.raises(KeyError):
        acknowledge(record, "missing", "U1", NOW)


def test_acknowledging_a_kind_acknowledges_each_of_its_incidents() -> None:
    record = Record(
        key="k", incidents={"stuck:b1": Incident("stuck", NOW, NOW), "stuck:b2": Incident("stuck", NOW, NOW)}
    )
    acked = acknowledge(record, "stuck", "cli:bob", NOW)
    assert all(i.acknowledged_by == "cli:bob" for i in acked.incidents.values())


def test_muted_tracks_without_saying_and_after_silence_announces_once() -> None:
    # GIVEN an opening during a silence
    opening = Notice(Kind.FAILED, Phase.OPEN, "failed", detail="x")
    quiet = muted(Evaluation((opening,), Record(key="k"), NOW))
    assert quiet.notices == ()
    assert quiet.base.incidents["failed"].unannounced
    # WHEN the silence has ended and the next evaluation only reminds
    later = NOW + timedelta(hours=30)
    reminder = remind_notice("failed", quiet.base.incidents["failed"], later, POLICY)
    assert reminder is not None
    said = after_silence(Evaluation((reminder,), quiet.base, later))
    # THEN one opening, marked as after the silence, and no reminder
    assert [(n.phase, n.after_silence) for n in said.notices] == [(Phase.OPEN, True)]
    assert said.notices[0].opened_at == NOW
    # AND once delivered, nothing is owed
    assert not said.next_record.incidents["failed"].unannounced
    assert after_silence(Evaluation((), said.next_record, later)).notices == ()


# -- the daily report and status ---------------------------------------------------------------------------------


def test_the_report_lists_active_silences_and_who_acknowledged_what() -> None:
    from backup_monitor.config import Settings
    from backup_monitor.report import build_report, render_slack, render_text

    settings = Settings.from_env({"SCALINGO_API_TOKEN": "t", "DAILY_REPORT_AT": ""})
    record = Record(
        key=BILLING.key,
        incidents={"failed": Incident("failed", NOW, NOW, acknowledged_by="U0ONCALL", acknowledged_at=NOW)},
    )
    gone = new_silence("old-*", timedelta(hours=1), "done", "cli:bob", NOW - timedelta(hours=3))
    report = build_report(settings, [BILLING], {BILLING.key: record}, NOW, silences=[silence(), gone])
    text = render_text(report)
    assert "billing-* until 2026-11-27 13:00 UTC (4 h left) by cli:alice: migration" in text
    assert "old-* expired at 2026-11-27 07:00 UTC" in text
    assert "acknowledged by U0ONCALL" in text
    slack = str(render_slack(report).blocks)
    assert "Silences: *1* active, 1 ended in the last day" in slack
    assert "acknowledged by <@U0ONCALL>" in slack
    quiet = render_text(build_report(settings, [BILLING], {BILLING.key: Record(key=BILLING.key)}, NOW))
    assert "Silence" not in quiet
    assert "cknowledged" not in quiet


def test_a_removed_silence_names_who_removed_it_an_expired_one_says_it_expired() -> None:
    from backup_monitor.report import silence_line

    s = silence(hours=4)
    (_, removed) = ended([s], s.id, "U0ONCALL", NOW + timedelta(hours=1))
    later = NOW + timedelta(hours=6)
    assert "removed by <@U0ONCALL> at" in silence_line(removed, later, slack=True)
    assert "removed by U0ONCALL at" in silence_line(removed, later, slack=False)
    assert "expired at" in silence_line(s, later, slack=True)
