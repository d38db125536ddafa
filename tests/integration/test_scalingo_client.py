"""The Scalingo client against the fake Scalingo API, over real HTTP on loopback."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import pytest

from backup_monitor.config import Target
from backup_monitor.scalingo.client import ScalingoClient, build_session
from backup_monitor.scalingo.errors import (
    AuthenticationError,
    LinkRejectedError,
    NotFoundError,
    PayloadError,
    ScalingoError,
    UnavailableError,
)
from tests.conftest import NOW
from tests.fakes import FakeScalingo

TARGET = Target("osc-fr1", "shop", "ad-1")
WINDOW = 0.6  # the rate-limit window, scaled down from a minute so that back-offs take a fraction of a second


class Clock:
    """A settable clock for the client's token cache."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def make_client(fake: FakeScalingo, clock: Clock | None = None, rate: int = 6000) -> ScalingoClient:
    return ScalingoClient(
        fake.api_token,
        auth_url=fake.url,
        api_url=fake.region_url(),
        db_api_url=fake.region_url(),
        rate_limit_per_minute=rate,
        timeout=5.0,
        session=build_session(retries=2, backoff_factor=0.01),
        clock=clock or time.time,
        window_seconds=WINDOW,
    )


@pytest.fixture
def fake(fake_scalingo: FakeScalingo) -> FakeScalingo:
    fake_scalingo.add_database("shop", "ad-1", scheduled_hours=[1, 13])
    fake_scalingo.add_backup("ad-1", NOW - timedelta(days=1), backup_id="old")
    fake_scalingo.add_backup("ad-1", NOW - timedelta(hours=2), "error", backup_id="new", size=None)
    return fake_scalingo


def test_backups_are_listed_newest_first_with_utc_times(fake: FakeScalingo) -> None:
    backups = make_client(fake).list_backups(TARGET)
    assert [b.id for b in backups] == ["new", "old"]
    assert backups[0].status == "error"
    assert backups[0].size is None
    assert backups[1].created_at == NOW - timedelta(days=1)
    assert backups[1].created_at.utcoffset() == timedelta(0)


def test_database_reports_schedule(fake: FakeScalingo) -> None:
    database = make_client(fake).get_database(TARGET)
    assert database.periodic_backups_enabled is True
    assert database.scheduled_hours == (1, 13)
    assert database.type_name == "postgresql"


def test_one_exchange_and_one_addon_token_serve_many_calls(fake: FakeScalingo) -> None:
    client = make_client(fake)
    for _ in range(5):
        client.list_backups(TARGET)
    client.get_database(TARGET)
    assert fake.count("auth") == 1
    assert fake.count("main", "/token") == 1
    assert fake.count("db") == 6


def test_tokens_are_renewed_a_few_minutes_before_their_expiry(fake: FakeScalingo) -> None:
    clock = Clock(fake.clock())
    client = make_client(fake, clock)
    client.list_backups(TARGET)
    clock.now += 42 * 60  # 18 minutes left, more than the largest renewal margin: reused
    client.list_backups(TARGET)
    assert (fake.count("auth"), fake.count("main", "/token")) == (1, 1)
    clock.now += 17 * 60  # one minute left, less than the smallest margin: renewed ahead of expiry
    client.list_backups(TARGET)
    assert (fake.count("auth"), fake.count("main", "/token")) == (2, 2)


def test_an_expired_addon_token_is_renewed_transparently(fake: FakeScalingo) -> None:
    client = make_client(fake)
    client.list_backups(TARGET)
    fake.expire_tokens("addon")
    before = len(fake.requests)
    backups = client.list_backups(TARGET)
    assert len(backups) == 2
    # one refused call, one new addon token, one retried call: a single extra token request
    assert [(r.api, r.status) for r in fake.requests[before:]] == [("db", 401), ("main", 200), ("db", 200)]


def test_an_expired_bearer_is_renewed_transparently(fake: FakeScalingo) -> None:
    client = make_client(fake)
    client.discover(["osc-fr1"])
    fake.expire_tokens("bearer")
    client.discover(["osc-fr1"])
    assert fake.count("auth") == 2


def test_a_refused_api_token_is_an_authentication_error(fake: FakeScalingo) -> None:
    client = ScalingoClient(
        "tk-us-wrong-secret-value", auth_url=fake.url, api_url=fake.region_url(), db_api_url=fake.region_url()
    )
    with pytest.raises(AuthenticationError) as info:
        client.list_backups(TARGET)
    assert "tk-us-wrong-secret-value" not in str(info.value) + repr(info.value)


def test_a_second_401_is_an_authentication_error(fake: FakeScalingo) -> None:
    client = make_client(fake)
    fake.fail("/backups", 401, times=2)
    with pytest.raises(AuthenticationError):
        client.list_backups(TARGET)


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_transient_errors_are_retried(fake: FakeScalingo, status: int) -> None:
    client = make_client(fake)
    fake.fail("/backups", status, times=2, retry_after="0" if status == 429 else None)
    assert len(client.list_backups(TARGET)) == 2
    assert fake.count("db", "/backups") == 3


def test_429_without_retry_after_is_backed_off_and_retried(fake: FakeScalingo) -> None:
    client = make_client(fake)
    fake.fail("/addons/ad-1/token", 429, "Retry later", times=1, content_type="text/plain")
    assert len(client.list_backups(TARGET)) == 2
    assert fake.count("main", "/token") == 2


@pytest.mark.parametrize("status", [429, 500, 503])
def test_persistent_errors_surface_as_unavailable(fake: FakeScalingo, status: int) -> None:
    client = make_client(fake)
    fake.fail("/backups", status, times=10)
    with pytest.raises(UnavailableError, match=str(status)):
        client.list_backups(TARGET)


def test_an_unreachable_host_is_unavailable(fake: FakeScalingo) -> None:
    url = fake.url
    fake.stop()
    client = ScalingoClient(
        fake.api_token,
        auth_url=url,
        api_url=url,
        db_api_url=url,
        session=build_session(retries=1, backoff_factor=0.01),
        timeout=1.0,
    )
    with pytest.raises(UnavailableError, match="could not be reached"):
        client.list_backups(TARGET)


def test_latency_beyond_the_read_timeout_is_unavailable(fake: FakeScalingo) -> None:
    fake.latency = 0.5
    client = ScalingoClient(
        fake.api_token,
        auth_url=fake.url,
        api_url=fake.region_url(),
        db_api_url=fake.region_url(),
        session=build_session(retries=0),
        timeout=0.2,
    )
    with pytest.raises(UnavailableError, match="in time"):
        client.list_backups(TARGET)


def test_an_unknown_addon_is_not_found(fake: FakeScalingo) -> None:
    with pytest.raises(NotFoundError):
        make_client(fake).list_backups(Target("osc-fr1", "shop", "ad-missing"))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{not json", "not valid JSON"),
        ('{"database_backups": {"id": 1}}', "database_backups"),
        ('{"something_else": []}', "'database_backups' is missing"),
        (
            '{"database_backups": [{"created_at": "2026-11-27T01:00:00Z", "status": "done"}]}',
            "'id' is missing",
        ),
        ('{"database_backups": [{"id": "x", "status": "done"}]}', "'created_at' is missing"),
        ('{"database_backups": [{"id": "x", "created_at": "yesterday", "status": "done"}]}', "ISO 8601"),
        ('{"database_backups": [{"id": "x", "created_at": "2026-11-27T01:00:00Z"}]}', "'status' is missing"),
        (
            '{"database_backups": [{"id": 7, "created_at": "2026-11-27T01:00:00Z", "status": "done"}]}',
            "wrong type",
        ),
        ('{"database_backups": ["x"]}', "expected an object"),
        ("[]", "expected an object"),
    ],
)
def test_malformed_payloads_are_payload_errors_naming_the_problem(fake: FakeScalingo, body: str, expected: str) -> None:
    client = make_client(fake)
    fake.fail("/backups", 200, body)
    with pytest.raises(PayloadError, match=expected):
        client.list_backups(TARGET)


def test_optional_fields_may_be_absent_or_null(fake: FakeScalingo) -> None:
    fake.fail(
        "/backups",
        200,
        '{"database_backups": [{"id": "a", "created_at": "2026-11-27T02:00:00+01:00", "status": "weird",'
        ' "started_at": null, "size": null}]}',
    )
    (backup,) = make_client(fake).list_backups(TARGET)
    assert backup.status == "weird"
    assert backup.started_at is None
    assert backup.size is None
    assert backup.method is None
    assert backup.created_at.hour == 1


def test_a_database_payload_without_schedule_flag_is_a_payload_error(fake: FakeScalingo) -> None:
    fake.fail("/api/databases/ad-1", 200, '{"database": {"id": "x"}}')
    with pytest.raises(PayloadError, match="periodic_backups_enabled"):
        make_client(fake).get_database(TARGET)


def test_download_link_on_the_database_api_host_is_accepted(fake: FakeScalingo) -> None:
    link = make_client(fake).archive_link(TARGET, "old")
    assert link.startswith(f"{fake.url}/osc-fr1/api/databases/ad-1/")
    assert "token=" in link


@pytest.mark.parametrize(
    "base", ["https://evil.example.com", "ftp://127.0.0.1", "http://127.0.0.2:80", "javascript:alert(1)//x"]
)
def test_download_link_elsewhere_is_rejected(fake: FakeScalingo, base: str) -> None:
    fake.link_base = base
    with pytest.raises(LinkRejectedError) as info:
        make_client(fake).archive_link(TARGET, "old")
    assert "token=" not in str(info.value)
    assert "dl-" not in str(info.value)


def test_discovery_skips_non_database_addons_without_asking_for_their_token(fake: FakeScalingo) -> None:
    fake.add_database("shop", "ad-2", provider="redis", provider_prefix=True)
    fake.add_other_addon("shop", "ad-smtp", "mailjet")
    fake.add_other_addon("blog", "ad-logs", "logtail")
    fake.add_database("eu-app", "ad-3", provider="mysql", region="osc-secnum-fr1")
    found = make_client(fake).discover(["osc-fr1", "osc-secnum-fr1"])
    assert [(d.region, d.app, d.addon_id, d.provider) for d in found] == [
        ("osc-fr1", "shop", "ad-1", "postgresql"),
        ("osc-fr1", "shop", "ad-2", "redis"),
        ("osc-secnum-fr1", "eu-app", "ad-3", "mysql"),
    ]
    assert fake.count("main", "/token") == 0


def test_the_client_limiter_keeps_the_main_api_under_its_limit(fake: FakeScalingo) -> None:
    fake.main_rate_limit = 3
    client = make_client(fake, rate=3)
    client.discover(["osc-fr1"])  # 2 main-API requests
    assert client.limiter.acquired == 2
    assert all(r.status != 429 for r in fake.requests)


def test_no_secret_reaches_errors_or_logs(fake: FakeScalingo, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(fake)
    link = client.archive_link(TARGET, "old")
    fake.expire_tokens()
    client.list_backups(TARGET)
    errors: list[ScalingoError] = []
    for status, body in [(401, None), (500, None), (200, "{bad")]:
        fake.fail("/backups", status, body, times=5)
        with pytest.raises(ScalingoError) as info:
            client.list_backups(TARGET)
        errors.append(info.value)
        fake.faults.clear()
    secrets = [fake.api_token, link.split("token=")[1], *fake._tokens]
    texts = [caplog.text, repr(client)] + [str(e) + repr(e) for e in errors]
    for secret in secrets:
        assert all(secret not in text for text in texts)
