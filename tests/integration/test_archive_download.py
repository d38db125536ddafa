"""Archives streamed from the fake Scalingo's download links over loopback HTTP, through the real client."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta

import pytest
import requests

from backup_monitor.archives import Outcome, Verdict, download_and_verify
from backup_monitor.config import Target
from backup_monitor.scalingo.client import ScalingoClient, build_session
from tests.conftest import NOW, settings_for
from tests.fakes import FakeScalingo
from tests.support.archives import GOOD, good, variants


@pytest.fixture
def session() -> Iterator[requests.Session]:
    http = build_session(retries=1, backoff_factor=0.01)
    yield http
    http.close()


def serve(
    fake: FakeScalingo, provider: str, body: bytes | Callable[[], Iterable[bytes]], size: int | None, **options: object
) -> str:
    """A database with one backup whose archive is `body`; returns its download link from the real client."""
    fake.add_database("shop", "ad-1", provider=provider)
    backup = fake.add_backup("ad-1", NOW - timedelta(hours=8), size=size)
    fake.set_archive(backup["id"], body, **options)
    client = ScalingoClient.from_settings(settings_for(fake))
    return client.archive_link(Target("osc-fr1", "shop", "ad-1"), backup["id"])


def fetch(session: requests.Session, link: str, provider: str, size: int | None, **kw: float) -> Verdict:
    options = {"max_bytes": 10**9, "time_limit": 30.0, "read_timeout": 5.0, **kw}
    return download_and_verify(session, link, type_name=provider, listed_size=size, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(GOOD))
def test_each_good_archive_passes_through_its_download_link(
    fake_scalingo: FakeScalingo, session: requests.Session, name: str
) -> None:
    data = good(name)
    link = serve(fake_scalingo, GOOD[name], data, len(data))
    verdict = fetch(session, link, GOOD[name], len(data))
    assert verdict.outcome is Outcome.OK, verdict
    assert verdict.received == len(data)


@pytest.mark.parametrize("variant", ["truncated", "byte flipped", "wrong magic", "empty dump", "size mismatch"])
def test_each_corrupt_archive_served_is_caught_and_named(
    fake_scalingo: FakeScalingo, session: requests.Session, variant: str
) -> None:
    # GIVEN a server that sends no Content-Length (so only the bytes themselves tell)
    case = variants("postgresql")[variant]
    link = serve(fake_scalingo, "postgresql", lambda: iter([case.data]), case.listed_size)
    verdict = fetch(session, link, "postgresql", case.listed_size)
    assert (verdict.outcome, verdict.code) == (Outcome.FAILED, case.code), verdict
    assert case.words in verdict.detail


def test_redirects_are_followed(fake_scalingo: FakeScalingo, session: requests.Session) -> None:
    data = good("mysql")
    link = serve(fake_scalingo, "mysql", data, len(data), redirect=True)
    assert fetch(session, link, "mysql", len(data)).outcome is Outcome.OK
    statuses = [r.status for r in fake_scalingo.requests if r.api == "download"]
    assert statuses == [302, 200]


def test_a_refused_download_cannot_run(fake_scalingo: FakeScalingo, session: requests.Session) -> None:
    data = good("mysql")
    link = serve(fake_scalingo, "mysql", data, len(data))
    verdict = fetch(session, link.replace("token=dl-", "token=xx-"), "mysql", len(data))
    assert (verdict.outcome, verdict.code, verdict.detail) == (
        Outcome.NOT_RUN,
        "refused",
        "the download was refused (HTTP 403)",
    )


def test_a_slow_server_runs_out_of_time(fake_scalingo: FakeScalingo, session: requests.Session) -> None:
    data = good("mongodb")
    link = serve(fake_scalingo, "mongodb", data, len(data), chunk_size=256, chunk_delay=0.05)
    verdict = fetch(session, link, "mongodb", len(data), time_limit=0.4)
    assert (verdict.outcome, verdict.code) == (Outcome.NOT_RUN, "out_of_time")
    assert "out of time" in verdict.detail


def test_a_stalled_download_is_named(fake_scalingo: FakeScalingo, session: requests.Session) -> None:
    data = good("postgresql")
    link = serve(fake_scalingo, "postgresql", data, len(data), stall_after=1000, stall_seconds=2.0)
    verdict = fetch(session, link, "postgresql", len(data), read_timeout=0.3)
    assert (verdict.outcome, verdict.code) == (Outcome.NOT_RUN, "stalled")


def test_a_connection_cut_short_cannot_run(fake_scalingo: FakeScalingo, session: requests.Session) -> None:
    data = good("postgresql")
    link = serve(fake_scalingo, "postgresql", data[:2000], len(data), content_length=len(data))
    verdict = fetch(session, link, "postgresql", len(data))
    assert (verdict.outcome, verdict.code) == (Outcome.NOT_RUN, "interrupted")


def test_a_content_length_other_than_the_listed_size_fails_before_reading(
    fake_scalingo: FakeScalingo, session: requests.Session
) -> None:
    data = good("redis")
    link = serve(fake_scalingo, "redis", data, len(data) + 5, content_length=len(data))
    verdict = fetch(session, link, "redis", len(data) + 5)
    assert (verdict.code, verdict.received) == ("size_mismatch", 0)


def test_without_content_length_the_bytes_are_still_counted(
    fake_scalingo: FakeScalingo, session: requests.Session
) -> None:
    data = good("redis")
    link = serve(fake_scalingo, "redis", lambda: iter([data[:100], data[100:]]), len(data) + 1)
    verdict = fetch(session, link, "redis", len(data) + 1)
    assert (verdict.code, verdict.received) == ("size_mismatch", len(data))


def test_too_big_is_decided_before_downloading(fake_scalingo: FakeScalingo, session: requests.Session) -> None:
    data = good("redis")
    link = serve(fake_scalingo, "redis", data, 7_000_000_000)
    verdict = fetch(session, link, "redis", 7_000_000_000, max_bytes=5_000_000_000)
    assert (verdict.outcome, verdict.code) == (Outcome.NOT_RUN, "too_big")
    assert fake_scalingo.count("download") == 0


def test_the_download_token_never_reaches_the_logs(
    fake_scalingo: FakeScalingo, session: requests.Session, caplog: pytest.LogCaptureFixture
) -> None:
    data = good("mysql")
    link = serve(fake_scalingo, "mysql", data, len(data), redirect=True)
    token = link.partition("token=")[2]
    with caplog.at_level(logging.DEBUG):
        verdict = fetch(session, link, "mysql", len(data))
    logged = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    assert token
    assert token not in logged
    assert token not in verdict.detail
    assert "download?…" in logged  # the redacted link is what is logged
