"""Reading a database's PITR recovery window, against the fake Scalingo API over real HTTP on loopback."""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from backup_monitor.config import Target
from backup_monitor.scalingo.client import ScalingoClient, build_session
from backup_monitor.scalingo.errors import (
    AuthenticationError,
    NotFoundError,
    OutOfTimeError,
    PayloadError,
    RedirectRefusedError,
    ScalingoError,
    UnavailableError,
)
from backup_monitor.scalingo.models import RecoveryWindow
from tests.fakes import FakeScalingo

TARGET = Target("osc-fr1", "shop", "ad-1")
WINDOW_PATH = "/api/databases/ad-1/pitr/recovery_window"


def make_client(fake: FakeScalingo) -> ScalingoClient:
    return ScalingoClient(
        fake.api_token,
        auth_url=fake.url,
        api_url=fake.region_url(),
        db_api_url=fake.region_url(),
        rate_limit_per_minute=6000,
        timeout=5.0,
        session=build_session(retries=2, backoff_factor=0.01),
        window_seconds=0.6,
    )


def now() -> datetime:
    """The fake and the client both run on the real clock here (their tokens' expiry must agree)."""
    return datetime.fromtimestamp(time.time(), UTC).replace(microsecond=0)


def window_body(latest: object, earliest: object = "2026-11-20T08:00:00Z") -> str:
    return json.dumps({"recovery_window": {"earliest_recoverable_at": earliest, "latest_recoverable_at": latest}})


@pytest.fixture
def fake(fake_scalingo: FakeScalingo) -> FakeScalingo:
    fake_scalingo.add_database("shop", "ad-1")
    return fake_scalingo


def test_the_window_is_read_with_utc_times(fake: FakeScalingo) -> None:
    earliest, latest = now() - timedelta(days=7), now() - timedelta(minutes=3)
    fake.set_recovery_window("ad-1", earliest, latest)
    window = make_client(fake).recovery_window(TARGET)
    assert window == RecoveryWindow(earliest, latest)
    assert window.latest.utcoffset() == timedelta(0)
    assert [(r.method, r.path, r.api, r.status) for r in fake.requests if r.api == "db"] == [
        ("GET", WINDOW_PATH, "db", 200)
    ]


def test_a_window_without_its_earliest_time_is_read(fake: FakeScalingo) -> None:
    latest = now() - timedelta(minutes=3)
    fake.set_recovery_window("ad-1", None, latest)
    assert make_client(fake).recovery_window(TARGET) == RecoveryWindow(None, latest)


def test_a_database_without_pitr_has_no_window(fake: FakeScalingo) -> None:
    # GIVEN the fake's default: no recovery window, a 404 for every database
    client = make_client(fake)
    assert client.recovery_window(TARGET) is None
    assert [(r.path, r.status) for r in fake.requests if r.api == "db"] == [(WINDOW_PATH, 404)]


def test_a_cleared_window_is_no_window(fake: FakeScalingo) -> None:
    client = make_client(fake)
    fake.set_recovery_window("ad-1", None, now())
    assert client.recovery_window(TARGET) is not None
    fake.clear_recovery_window("ad-1")
    assert client.recovery_window(TARGET) is None


def test_a_400_is_no_window(fake: FakeScalingo) -> None:
    fake.fail("/pitr/recovery_window", 400, '{"error": "point-in-time recovery is not enabled"}')
    assert make_client(fake).recovery_window(TARGET) is None


def test_a_404_keeps_the_addon_token_and_the_database(fake: FakeScalingo) -> None:
    # GIVEN an addon token fetched for the backups list
    client = make_client(fake)
    client.read_backups(TARGET)
    # WHEN the recovery window answers 404
    assert client.recovery_window(TARGET) is None
    # THEN the token is still cached and serves the next calls: one token request in all
    assert not client.needs_token(TARGET)
    client.read_backups(TARGET)
    client.recovery_window(TARGET)
    assert fake.count("main", "/token") == 1
    assert fake.count("auth") == 1
    assert client.db_api_requests == fake.count("db") == 4


def test_the_addon_token_of_the_backups_list_is_reused(fake: FakeScalingo) -> None:
    fake.set_recovery_window("ad-1", None, now())
    client = make_client(fake)
    client.read_backups(TARGET)
    client.get_database(TARGET)
    client.recovery_window(TARGET)
    assert (fake.count("auth"), fake.count("main", "/token")) == (1, 1)
    assert client.db_api_requests == 3
    assert client.main_api_requests == 1


def test_a_deleted_database_has_no_window_but_its_backups_say_not_found(fake: FakeScalingo) -> None:
    client = make_client(fake)
    client.read_backups(TARGET)
    fake.remove_database("ad-1")
    assert client.recovery_window(TARGET) is None  # the backups call is the one that tells a deletion
    with pytest.raises(NotFoundError):
        client.read_backups(TARGET)


def test_a_refused_addon_token_is_renewed_once(fake: FakeScalingo) -> None:
    latest = now()
    fake.set_recovery_window("ad-1", None, latest)
    client = make_client(fake)
    client.read_backups(TARGET)
    fake.expire_tokens("addon")
    before = len(fake.requests)
    assert client.recovery_window(TARGET) == RecoveryWindow(None, latest)
    assert [(r.api, r.status) for r in fake.requests[before:]] == [("db", 401), ("main", 200), ("db", 200)]


@pytest.mark.parametrize(("status", "times"), [(401, 2), (403, 1)])
def test_a_refusal_is_an_authentication_error(fake: FakeScalingo, status: int, times: int) -> None:
    fake.fail("/pitr/recovery_window", status, '{"error": "You are not authorized"}', times=times)
    with pytest.raises(AuthenticationError, match=f"refused \\({status}\\)") as info:
        make_client(fake).recovery_window(TARGET)
    assert info.value.api == "db"


@pytest.mark.parametrize("status", [500, 503])
def test_a_persistent_server_error_is_unavailable(fake: FakeScalingo, status: int) -> None:
    fake.fail("/pitr/recovery_window", status, times=10)
    with pytest.raises(UnavailableError, match=str(status)) as info:
        make_client(fake).recovery_window(TARGET)
    assert info.value.api == "db"


def test_a_transient_server_error_is_retried(fake: FakeScalingo) -> None:
    fake.set_recovery_window("ad-1", None, now())
    fake.fail("/pitr/recovery_window", 500, times=2)
    assert make_client(fake).recovery_window(TARGET) is not None
    assert fake.count("db", "/pitr/recovery_window") == 3


def test_an_unexpected_status_is_a_scalingo_error(fake: FakeScalingo) -> None:
    fake.fail("/pitr/recovery_window", 409, '{"error": "conflict"}')
    with pytest.raises(ScalingoError, match="409") as info:
        make_client(fake).recovery_window(TARGET)
    assert type(info.value) is ScalingoError


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("", "not valid JSON"),
        ('["recovery_window"]', "expected an object, got list"),
        ('{"something_else": {}}', "'recovery_window' is missing"),
        ('{"recovery_window": "yesterday"}', "'recovery_window' has the wrong type (str)"),
        (
            '{"recovery_window": {"earliest_recoverable_at": "2026-11-20T08:00:00Z"}}',
            "'latest_recoverable_at' is missing",
        ),
        (window_body(None), "'latest_recoverable_at' is missing"),
        (window_body(1764234000), "'latest_recoverable_at' has the wrong type (int)"),
        (window_body("an hour ago"), "not an ISO 8601 time"),
        (window_body("0001-01-01T00:00:00Z"), "implausibly old"),  # Go's zero time
        (window_body("2999-01-01T00:00:00Z"), "in the future"),
    ],
)
def test_a_malformed_window_is_a_payload_error(fake: FakeScalingo, body: str, expected: str) -> None:
    fake.fail("/pitr/recovery_window", 200, body)
    with pytest.raises(PayloadError, match=re.escape(expected)) as info:
        make_client(fake).recovery_window(TARGET)
    assert info.value.api == "db"


def test_a_latest_time_a_day_ahead_is_a_payload_error(fake: FakeScalingo) -> None:
    fake.set_recovery_window("ad-1", None, now() + timedelta(days=1))
    with pytest.raises(PayloadError, match="in the future"):
        make_client(fake).recovery_window(TARGET)


def test_a_call_past_the_checks_time_is_out_of_time(fake: FakeScalingo) -> None:
    fake.set_recovery_window("ad-1", None, now())
    client = make_client(fake)
    client.read_backups(TARGET)  # the addon token is cached: only the window's own call is refused
    client.interrupt()
    with pytest.raises(OutOfTimeError):
        client.recovery_window(TARGET)
    assert fake.count("db", "/pitr/") == 0


def test_a_redirect_on_the_same_host_is_followed(fake: FakeScalingo) -> None:
    latest = now()
    fake.set_recovery_window("ad-1", None, latest)
    fake.fail("/pitr/recovery_window", 302, "", headers={"Location": f"/osc-fr1{WINDOW_PATH}?moved=1"})
    assert make_client(fake).recovery_window(TARGET) == RecoveryWindow(None, latest)
    assert [(r.path, r.status) for r in fake.requests if r.api == "db"] == [(WINDOW_PATH, 302), (WINDOW_PATH, 200)]


def test_a_redirect_to_another_host_is_refused(fake: FakeScalingo) -> None:
    port = fake.url.rsplit(":", 1)[1]
    fake.fail("/pitr/recovery_window", 302, "", headers={"Location": f"http://localhost:{port}{WINDOW_PATH}"})
    with pytest.raises(RedirectRefusedError, match="localhost"):
        make_client(fake).recovery_window(TARGET)


@pytest.mark.parametrize(
    ("status", "body", "times"),
    [(401, '{"error": "expired"}', 2), (500, None, 10), (200, window_body("0001-01-01T00:00:00Z"), 1)],
)
def test_an_error_never_shows_a_token(
    fake: FakeScalingo, caplog: pytest.LogCaptureFixture, status: int, body: str | None, times: int
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(fake)
    client.read_backups(TARGET)
    fake.fail("/pitr/recovery_window", status, body, times=times)
    with pytest.raises(ScalingoError) as info:
        client.recovery_window(TARGET)
    texts = str(info.value) + repr(info.value) + caplog.text
    assert fake._tokens  # the bearer and the addon tokens the client was given
    for secret in [fake.api_token, *fake._tokens]:
        assert secret not in texts
