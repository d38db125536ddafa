"""Reading a PITR recovery window: the latest restore point is required and must be plausible."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backup_monitor.scalingo.errors import PayloadError
from backup_monitor.scalingo.models import MAX_RECOVERY_POINT_AHEAD, RecoveryWindow, parse_recovery_window

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
EARLIEST = "2026-11-20T09:00:00.000+01:00"
LATEST = "2026-11-27T09:55:12.345+01:00"


def body(**window: Any) -> dict[str, Any]:
    fields = {"earliest_recoverable_at": EARLIEST, "latest_recoverable_at": LATEST, **window}
    return {"recovery_window": {k: v for k, v in fields.items() if v is not ...}}


def test_a_window_is_read_as_utc_times() -> None:
    window = parse_recovery_window(body(), now=NOW)
    assert window == RecoveryWindow(
        datetime(2026, 11, 20, 8, 0, tzinfo=UTC), datetime(2026, 11, 27, 8, 55, 12, 345000, tzinfo=UTC)
    )
    assert window.latest.utcoffset() == timedelta(0)
    assert window.earliest is not None
    assert window.earliest.utcoffset() == timedelta(0)


def test_a_naive_time_is_taken_as_utc() -> None:
    window = parse_recovery_window(body(latest_recoverable_at="2026-11-27T08:00:00"), now=NOW)
    assert window.latest == datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def test_the_window_is_frozen() -> None:
    window = parse_recovery_window(body(), now=NOW)
    with pytest.raises(dataclasses.FrozenInstanceError):
        window.latest = NOW  # type: ignore[misc]
    assert not hasattr(window, "__dict__")  # slotted


@pytest.mark.parametrize(
    "earliest",
    [
        ...,  # absent, as Go's omitempty leaves it
        None,
        "",
        "last week",
        42,
        "0001-01-01T00:00:00Z",  # Go's zero time
        "1970-01-01T00:00:00Z",  # implausibly old
        "2026-11-27T09:00:00+00:00",  # after the latest restore point: not a window
    ],
)
def test_an_unreadable_earliest_time_is_none(earliest: Any) -> None:
    window = parse_recovery_window(body(earliest_recoverable_at=earliest), now=NOW)
    assert window.earliest is None
    assert window.latest == datetime(2026, 11, 27, 8, 55, 12, 345000, tzinfo=UTC)


def test_earliest_equal_to_latest_is_kept() -> None:
    window = parse_recovery_window(body(earliest_recoverable_at=LATEST), now=NOW)
    assert window.earliest == window.latest


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ([], "expected an object, got list"),
        ("not json", "expected an object, got str"),
        (None, "expected an object, got NoneType"),
        ({}, "field 'recovery_window' is missing"),
        ({"recovery_window": None}, "field 'recovery_window' is missing"),
        ({"recovery_window": []}, "field 'recovery_window' has the wrong type (list)"),
        ({"recovery_window": "2026-11-27"}, "field 'recovery_window' has the wrong type (str)"),
        (body(latest_recoverable_at=...), "field 'latest_recoverable_at' is missing"),
        (body(latest_recoverable_at=None), "field 'latest_recoverable_at' is missing"),
        (body(latest_recoverable_at=1764234000), "field 'latest_recoverable_at' has the wrong type (int)"),
        (body(latest_recoverable_at=True), "field 'latest_recoverable_at' has the wrong type (bool)"),
        (body(latest_recoverable_at={"t": LATEST}), "field 'latest_recoverable_at' has the wrong type (dict)"),
        (body(latest_recoverable_at=""), "is not an ISO 8601 time"),
        (body(latest_recoverable_at="an hour ago"), "is not an ISO 8601 time"),
        (body(latest_recoverable_at="0001-01-01T00:00:00+01:00"), "is not an ISO 8601 time"),  # no UTC equivalent
    ],
)
def test_a_malformed_body_is_a_payload_error(payload: Any, reason: str) -> None:
    with pytest.raises(PayloadError, match="recovery") as caught:
        parse_recovery_window(payload, now=NOW)
    assert reason in caught.value.message


@pytest.mark.parametrize("zero", ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00", "1999-12-31T23:59:59Z"])
def test_go_zero_time_or_an_implausibly_old_latest_time_is_a_payload_error(zero: str) -> None:
    with pytest.raises(PayloadError, match="implausibly old"):
        parse_recovery_window(body(latest_recoverable_at=zero, earliest_recoverable_at=...), now=NOW)


@pytest.mark.parametrize("ahead", [MAX_RECOVERY_POINT_AHEAD + timedelta(seconds=1), timedelta(days=365 * 100)])
def test_a_latest_time_far_in_the_future_is_a_payload_error(ahead: timedelta) -> None:
    latest = (NOW + ahead).isoformat()
    with pytest.raises(PayloadError, match="in the future"):
        parse_recovery_window(body(latest_recoverable_at=latest), now=NOW)


def test_a_latest_time_a_little_ahead_of_the_clock_is_trusted() -> None:
    latest = NOW + MAX_RECOVERY_POINT_AHEAD
    assert parse_recovery_window(body(latest_recoverable_at=latest.isoformat()), now=NOW).latest == latest


def test_the_far_future_is_judged_against_the_current_time_by_default() -> None:
    soon = datetime.now(UTC) - timedelta(minutes=5)
    later = datetime.now(UTC) + timedelta(days=2)
    assert parse_recovery_window(body(latest_recoverable_at=soon.isoformat())).latest == soon
    with pytest.raises(PayloadError, match="in the future"):
        parse_recovery_window(body(latest_recoverable_at=later.isoformat()))
