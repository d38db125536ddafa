"""The Scalingo client against hostile or broken answers: slow, huge, malformed, redirected elsewhere.

Real HTTP on loopback only: the fake Scalingo, plus a tiny recording server standing for "another host".
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from backup_monitor.config import Target
from backup_monitor.scalingo.client import MAX_JSON_BYTES, MAX_REDIRECTS, ScalingoClient, build_session
from backup_monitor.scalingo.errors import (
    OutOfTimeError,
    PayloadError,
    RedirectRefusedError,
    ScalingoError,
    UnavailableError,
)
from tests.conftest import NOW
from tests.fakes import FakeScalingo

ROOT = Path(__file__).resolve().parents[2]
TARGET = Target("osc-fr1", "shop", "ad-1")
BACKUPS_BODY = json.dumps(
    {"database_backups": [{"id": "late", "created_at": "2026-11-27T01:00:00Z", "status": "done", "size": 1}]}
)
# (path fragment of the call, the API it belongs to) for the three Scalingo APIs
CALLS = [("/v1/tokens/exchange", "auth"), ("/addons/ad-1/token", "main"), ("/backups", "db")]


def make_client(fake: FakeScalingo, timeout: float = 5.0, retries: int = 2, backoff: float = 0.01) -> ScalingoClient:
    return ScalingoClient(
        fake.api_token,
        auth_url=fake.url,
        api_url=fake.region_url(),
        db_api_url=fake.region_url(),
        rate_limit_per_minute=6000,
        timeout=timeout,
        session=build_session(retries=retries, backoff_factor=backoff),
        window_seconds=0.6,
    )


@pytest.fixture
def fake(fake_scalingo: FakeScalingo) -> FakeScalingo:
    fake_scalingo.add_database("shop", "ad-1")
    fake_scalingo.add_backup("ad-1", NOW - timedelta(days=1), backup_id="good")
    return fake_scalingo


# -- a tiny server standing for another host --------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    authorization: bool


class OtherHost:
    """Answers every request with a valid backups list, and records what it was sent."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def _answer(self) -> None:
                owner.seen.append(Seen(self.command, self.path, "Authorization" in self.headers))
                data = BACKUPS_BODY.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = _answer
            do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def other_host() -> Iterator[OtherHost]:
    host = OtherHost()
    yield host
    host.stop()


# -- deadlines -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("drip", [0.5, 4.0])
def test_a_slow_loris_answer_fails_by_the_deadline(fake: FakeScalingo, drip: float) -> None:
    client = make_client(fake, timeout=3.0)
    client.get_database(TARGET)  # tokens fetched: only the backups call is timed
    # GIVEN a server that sends its headers at once, then the body one byte every `drip` seconds
    fake.fail("/backups", 200, BACKUPS_BODY, drip_seconds=drip)
    started = time.monotonic()
    # WHEN the backups are read with a 3 s deadline
    with pytest.raises(UnavailableError, match="did not answer in time") as info:
        client.list_backups(TARGET)
    elapsed = time.monotonic() - started
    # THEN it fails near the deadline, far below what the drip takes (every socket read alone was in time
    # for drip=0.5: only a deadline for the whole exchange stops it)
    assert elapsed < 3 * 3.0
    assert elapsed < len(BACKUPS_BODY) * drip / 10
    assert info.value.api == "db"


@pytest.mark.parametrize(("path", "api"), CALLS)
def test_every_api_has_the_deadline_and_names_itself(fake: FakeScalingo, path: str, api: str) -> None:
    client = make_client(fake, timeout=2.0)
    fake.fail(path, 200, '{"token": "x", "addon": {"token": "y"}, "database_backups": []}', drip_seconds=0.5)
    started = time.monotonic()
    with pytest.raises(UnavailableError, match="in time") as info:
        client.list_backups(TARGET)
    assert time.monotonic() - started < 3 * 2.0
    assert info.value.api == api


def test_the_check_deadline_cuts_a_call_short_as_out_of_time(fake: FakeScalingo) -> None:
    client = make_client(fake, timeout=60.0)
    client.get_database(TARGET)
    fake.fail("/backups", 200, BACKUPS_BODY, drip_seconds=0.5)
    # GIVEN a check that must end in 2 s (no grace for calls in flight)
    client.begin_check(time.monotonic() + 2.0, grace=0.0)
    started = time.monotonic()
    # THEN the slow call ends with the check's time, as "no time left" (the database is left for next time)
    with pytest.raises(OutOfTimeError):
        client.list_backups(TARGET)
    assert time.monotonic() - started < 3 * 2.0
    # AND once the check's time is spent, no call is made at all
    before = len(fake.requests)
    with pytest.raises(OutOfTimeError) as info:
        client.get_database(TARGET)
    assert len(fake.requests) == before
    assert info.value.api == "db"


def test_calls_in_flight_may_finish_within_the_grace(fake: FakeScalingo) -> None:
    client = make_client(fake, timeout=5.0)
    client.get_database(TARGET)
    client.begin_check(time.monotonic() - 1.0, grace=10.0)  # no database may start, but one started may finish
    assert [b.id for b in client.list_backups(TARGET)] == ["good"]


def test_headers_that_never_come_fail_by_the_deadline_retries_included(fake: FakeScalingo) -> None:
    client = make_client(fake, timeout=2.0, retries=3)
    client.get_database(TARGET)
    fake.latency = 30.0  # every answer waits: each attempt would time out, then be retried
    started = time.monotonic()
    with pytest.raises(UnavailableError, match="in time"):
        client.list_backups(TARGET)
    assert time.monotonic() - started < 2 * 2.0  # not 4 attempts of 2 s each


@pytest.mark.parametrize(("retry_after", "backoff"), [("25", 0.01), (None, 10.0)])
def test_retries_never_sleep_past_the_deadline(fake: FakeScalingo, retry_after: str | None, backoff: float) -> None:
    client = make_client(fake, timeout=3.0, retries=3, backoff=backoff)
    client.get_database(TARGET)
    # GIVEN a database API answering 503 with a long Retry-After (or a long back-off between retries)
    fake.fail("/backups", 503, times=10, retry_after=retry_after)
    started = time.monotonic()
    with pytest.raises(UnavailableError, match="503"):
        client.list_backups(TARGET)
    # THEN the call gives up at once instead of sleeping 20 s or more
    assert time.monotonic() - started < 3.0


# -- sizes -----------------------------------------------------------------------------------------------

MEMORY_PROBE = """
import json, resource, sys, tracemalloc
from backup_monitor.config import Target
from backup_monitor.scalingo.client import ScalingoClient, build_session
from backup_monitor.scalingo.errors import PayloadError

token, url = sys.argv[1], sys.argv[2]
client = ScalingoClient(token, auth_url=url, api_url=url + "/{region}", db_api_url=url + "/{region}",
                        session=build_session(retries=0), timeout=60)
target = Target("osc-fr1", "shop", "ad-1")
client.get_database(target)  # warm: tokens, connections, imports
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
try:
    client.list_backups(target)
    error = ""
except PayloadError as exc:
    error = str(exc)
traced_peak = tracemalloc.get_traced_memory()[1]
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"growth_kib": after - before, "traced_peak_kib": traced_peak // 1024, "error": error}))
"""


def test_a_huge_answer_is_refused_without_being_read_into_memory(fake: FakeScalingo) -> None:
    # GIVEN 100 MB of valid JSON, sent without Content-Length (its end is the connection's close)
    fake.fail("/backups", 200, size=100_000_000, announce_length=False)
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'functions/backup_monitor'}{os.pathsep}{ROOT}"}
    # WHEN a separate process reads it, measuring its peak memory
    probe = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, fake.api_token, fake.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    result = json.loads(probe.stdout)
    # THEN it is a failed read naming the cap, and the process held little more than the cap
    assert f"exceeded {MAX_JSON_BYTES} bytes" in result["error"]
    assert result["growth_kib"] < 64 * 1024, result  # peak resident size, KiB on Linux
    assert result["traced_peak_kib"] < 4 * MAX_JSON_BYTES // 1024, result


def test_an_announced_huge_answer_is_refused_before_its_body(fake: FakeScalingo) -> None:
    client = make_client(fake)
    fake.fail("/backups", 200, size=100_000_000)
    started = time.monotonic()
    with pytest.raises(PayloadError, match=f"exceeded {MAX_JSON_BYTES} bytes") as info:
        client.list_backups(TARGET)
    assert "announced" in str(info.value)
    assert time.monotonic() - started < 2.0
    assert info.value.api == "db"


def test_an_answer_just_under_the_cap_is_read(fake: FakeScalingo) -> None:
    fake.fail("/backups", 200, size=MAX_JSON_BYTES - 1000, announce_length=False)
    listing = make_client(fake, timeout=30.0).read_backups(TARGET)
    assert len(listing.backups) == 1  # every generated entry has the same id
    assert listing.duplicates > 10_000


def test_json_nested_too_deep_is_a_payload_error(fake: FakeScalingo) -> None:
    fake.fail("/backups", 200, "[" * 1_000_000)
    with pytest.raises(PayloadError, match="not valid JSON"):
        make_client(fake).list_backups(TARGET)


# -- entries ---------------------------------------------------------------------------------------------


def test_a_malformed_entry_beside_a_failed_backup_is_skipped_and_counted(
    fake: FakeScalingo, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    fake.add_backup("ad-1", NOW - timedelta(hours=2), "error", backup_id="failed", size=None)
    fake.add_raw_backup("ad-1", {"id": 42, "created_at": "2026-11-27T07:00:00Z", "status": "done", "name": "MARK"})
    fake.add_raw_backup("ad-1", {"id": "no-time", "status": "done", "name": "MARK"})
    fake.add_raw_backup("ad-1", "MARK")
    client = make_client(fake)
    listing = client.read_backups(TARGET)
    assert [b.id for b in listing.backups] == ["failed", "good"]
    assert listing.backups[0].status == "error"
    assert (listing.skipped, listing.duplicates) == (3, 0)
    assert any("'id'" in p for p in listing.problems)
    assert any("'created_at'" in p for p in listing.problems)
    assert any("expected an object" in p for p in listing.problems)
    # the thin wrapper keeps the readable ones
    assert [b.id for b in client.list_backups(TARGET)] == ["failed", "good"]
    # logged with the database and the fields, never the entries themselves
    records = [r for r in caplog.records if r.getMessage() == "backup entries skipped"]
    assert records
    assert records[0].__dict__["target"] == TARGET.key
    assert "MARK" not in caplog.text
    assert all("MARK" not in json.dumps(r.__dict__, default=str) for r in records)


def test_a_duplicated_id_counts_once(fake: FakeScalingo) -> None:
    first = fake.add_backup("ad-1", NOW - timedelta(hours=2), "error", backup_id="twice", size=None)
    fake.add_raw_backup("ad-1", {**first, "status": "done", "size": 10})
    listing = make_client(fake).read_backups(TARGET)
    assert [b.id for b in listing.backups] == ["twice", "good"]
    assert listing.backups[0].status == "error"  # the first one in the answer is kept
    assert (listing.skipped, listing.duplicates) == (0, 1)


def test_a_list_with_no_readable_entry_is_still_a_payload_error(fake: FakeScalingo) -> None:
    fake.fail("/backups", 200, '{"database_backups": [{"id": 1}, "x"]}')
    client = make_client(fake)
    with pytest.raises(PayloadError, match="no backup entry could be read") as info:
        client.list_backups(TARGET)
    assert info.value.api == "db"
    fake.fail("/backups", 200, '{"database_backups": [{"id": 1}, "x"]}')
    listing = client.read_backups(TARGET)  # the listing itself says so without raising
    assert (listing.backups, listing.skipped) == ((), 2)


# -- redirects -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "api"), CALLS)
def test_a_redirect_to_another_host_is_refused_and_sends_it_nothing(
    fake: FakeScalingo, other_host: OtherHost, caplog: pytest.LogCaptureFixture, path: str, api: str
) -> None:
    caplog.set_level(logging.DEBUG)
    elsewhere = f"http://127.0.0.1:{other_host.port}/osc-fr1/api/databases/ad-1/backups?token=dl-secret-123"
    fake.fail(path, 302 if api != "main" else 307, "", headers={"Location": elsewhere})
    client = make_client(fake)
    with pytest.raises(RedirectRefusedError) as info:
        client.list_backups(TARGET)
    # THEN the other host saw no request at all, let alone one with credentials
    assert other_host.seen == []
    assert info.value.api == api
    assert f"127.0.0.1:{other_host.port}" in str(info.value)
    texts = str(info.value) + repr(info.value) + caplog.text
    for secret in ["dl-secret-123", "token=", fake.api_token, *fake._tokens]:
        assert secret not in texts


def test_another_name_for_the_same_address_is_another_host(fake: FakeScalingo) -> None:
    port = fake.url.rsplit(":", 1)[1]
    fake.fail("/backups", 302, "", headers={"Location": f"http://localhost:{port}/osc-fr1/api/databases/ad-1/backups"})
    with pytest.raises(RedirectRefusedError, match="localhost"):
        make_client(fake).list_backups(TARGET)


@pytest.mark.parametrize("absolute", [True, False])
def test_a_redirect_on_the_same_host_is_followed(fake: FakeScalingo, absolute: bool) -> None:
    client = make_client(fake)
    client.get_database(TARGET)
    path = "/osc-fr1/api/databases/ad-1/backups?moved=1"
    fake.fail("/backups", 302, "", headers={"Location": f"{fake.url}{path}" if absolute else path})
    fake.reset_requests()
    assert [b.id for b in client.list_backups(TARGET)] == ["good"]
    backups_path = "/api/databases/ad-1/backups"
    assert [(r.path, r.status) for r in fake.requests] == [(backups_path, 302), (backups_path, 200)]
    assert client.db_api_requests == 3  # get_database, the redirect, the call it led to


def test_a_redirect_loop_stops(fake: FakeScalingo) -> None:
    fake.fail("/backups", 302, "", times=20, headers={"Location": "/osc-fr1/api/databases/ad-1/backups"})
    with pytest.raises(RedirectRefusedError, match=f"more than {MAX_REDIRECTS} redirects"):
        make_client(fake).list_backups(TARGET)
    assert fake.count("db", "/backups") == MAX_REDIRECTS + 1


def test_errors_still_work_as_plain_scalingo_errors() -> None:
    error = ScalingoError("message")
    assert (str(error), error.api) == ("message", "")
    assert ScalingoError("m", api="db").api == "db"
