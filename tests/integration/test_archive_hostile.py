"""Archive downloads against servers that drip, go silent or redirect away: real HTTP on 127.0.0.1 only."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from backup_monitor.archives import Outcome, Verdict, download_and_verify
from backup_monitor.config import Target
from backup_monitor.scalingo.client import ScalingoClient, build_session
from tests.conftest import NOW, settings_for
from tests.fakes import FakeScalingo
from tests.support.archives import good

TOKEN = "dl-s3cr3t-t0ken"
Route = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class Seen:
    path: str
    headers: dict[str, str]


@dataclass
class Server:
    """A loopback HTTP server answering every GET with `route`, recording what it was sent."""

    route: Route
    seen: list[Seen] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def origin(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Server:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                owner.seen.append(Seen(self.path, {k.lower(): v for k, v in self.headers.items()}))
                with contextlib.suppress(OSError):  # the client gave up: part of what this server is for
                    owner.route(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@pytest.fixture
def servers() -> Iterator[Callable[[Route], Server]]:
    started: list[Server] = []

    def start(route: Route) -> Server:
        started.append(Server(route).start())
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def session() -> Iterator[requests.Session]:
    http = build_session(retries=1, backoff_factor=0.01)
    yield http
    http.close()


def redirect_to(location: Callable[[], str]) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", location())
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return route


def archive(data: bytes, *, piece: int | None = None, delay: float = 0.0, chunked: bool = False) -> Route:
    """Serve `data` (in `piece`-byte writes `delay` seconds apart; chunked transfer encoding if asked)."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/gzip")
        handler.send_header(
            "Transfer-Encoding" if chunked else "Content-Length", "chunked" if chunked else str(len(data))
        )
        handler.end_headers()
        size = piece or len(data)
        for i in range(0, len(data), size):
            part = data[i : i + size]
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
            handler.wfile.flush()
            time.sleep(delay)
        if chunked:
            handler.wfile.write(b"0\r\n\r\n")

    return route


def fetch(session: requests.Session, link: str, size: int | None, **kw: object) -> tuple[Verdict, float]:
    options: dict[str, object] = {"max_bytes": 10**9, "time_limit": 30.0, "read_timeout": 5.0, **kw}
    started = time.monotonic()
    verdict = download_and_verify(session, link, type_name="postgresql", listed_size=size, **options)  # type: ignore[arg-type]
    return verdict, time.monotonic() - started


def fake_link(fake: FakeScalingo, data: bytes, **options: object) -> str:
    fake.add_database("shop", "ad-1", provider="postgresql")
    backup = fake.add_backup("ad-1", NOW - timedelta(hours=8), size=len(data))
    fake.set_archive(backup["id"], data, **options)
    return ScalingoClient.from_settings(settings_for(fake)).archive_link(
        Target("osc-fr1", "shop", "ad-1"), backup["id"]
    )


# -- time --------------------------------------------------------------------------------------------------


def test_a_drip_fed_archive_runs_out_of_time_at_its_limit(
    fake_scalingo: FakeScalingo, session: requests.Session
) -> None:
    # GIVEN 10 bytes every 0.5 s: each read is quick, the whole archive would take minutes
    data = good("postgresql")
    link = fake_link(fake_scalingo, data, chunk_size=10, chunk_delay=0.5)
    verdict, seconds = fetch(session, link, len(data), time_limit=3.0)
    assert (verdict.outcome, verdict.code) == (Outcome.NOT_RUN, "out_of_time"), verdict
    assert 0 < verdict.received < len(data)
    assert seconds < 9.0


def test_a_silent_server_is_cut_at_the_deadline_not_at_the_read_timeout(
    fake_scalingo: FakeScalingo, session: requests.Session
) -> None:
    data = good("postgresql")
    link = fake_link(fake_scalingo, data, stall_after=100, stall_seconds=10.0)
    verdict, seconds = fetch(session, link, len(data), time_limit=2.0, read_timeout=30.0)
    assert (verdict.outcome, verdict.code) == (Outcome.NOT_RUN, "out_of_time"), verdict
    assert seconds < 6.0


def test_a_chunked_drip_runs_out_of_time(servers: Callable[[Route], Server], session: requests.Session) -> None:
    data = good("postgresql")
    server = servers(archive(data, piece=10, delay=0.5, chunked=True))
    verdict, seconds = fetch(session, f"{server.origin}/download?token={TOKEN}", len(data), time_limit=2.0)
    assert (verdict.outcome, verdict.code) == (Outcome.NOT_RUN, "out_of_time"), verdict
    assert seconds < 6.0


def test_a_chunked_archive_still_verifies(servers: Callable[[Route], Server], session: requests.Session) -> None:
    data = good("postgresql")
    server = servers(archive(data, piece=1000, chunked=True))
    verdict, _ = fetch(session, f"{server.origin}/download?token={TOKEN}", len(data))
    assert verdict.outcome is Outcome.OK, verdict
    assert verdict.received == len(data)


# -- redirects ---------------------------------------------------------------------------------------------


def test_a_redirect_to_another_port_is_not_followed(
    servers: Callable[[Route], Server], session: requests.Session
) -> None:
    data = good("postgresql")
    elsewhere = servers(archive(data))
    home = servers(redirect_to(lambda: f"{elsewhere.origin}/store?token={TOKEN}&sig=abc"))
    verdict, _ = fetch(session, f"{home.origin}/download?token={TOKEN}", len(data))
    assert (verdict.outcome, verdict.code) == (Outcome.NOT_RUN, "refused"), verdict
    assert elsewhere.origin.removeprefix("http://") in verdict.detail
    assert TOKEN not in verdict.detail
    assert "sig=" not in verdict.detail
    assert elsewhere.seen == []


@pytest.mark.parametrize(
    "location",
    ["https://127.0.0.1:{port}/store", "http://localhost:{port}/store", "ftp://127.0.0.1:{port}/store"],
)
def test_a_redirect_off_the_origin_in_scheme_or_name_is_not_followed(
    servers: Callable[[Route], Server], session: requests.Session, location: str
) -> None:
    data = good("postgresql")
    home: list[Server] = []
    home.append(servers(redirect_to(lambda: location.format(port=home[0].origin.rpartition(":")[2]))))
    verdict, _ = fetch(session, f"{home[0].origin}/download?token={TOKEN}", len(data))
    assert (verdict.outcome, verdict.code) == (Outcome.NOT_RUN, "refused"), verdict
    assert [s.path.partition("?")[0] for s in home[0].seen] == ["/download"]


def test_a_redirect_on_the_same_origin_verifies_without_credentials(
    servers: Callable[[Route], Server], session: requests.Session
) -> None:
    # GIVEN a session that would send an Authorization header (as the API client's could)
    data = good("postgresql")
    good_archive, to_store = archive(data), redirect_to(lambda: "/store/archive.tar.gz?sig=abc")

    def route(handler: BaseHTTPRequestHandler) -> None:
        (good_archive if handler.path.startswith("/store/") else to_store)(handler)

    home = servers(route)
    session.headers["Authorization"] = "Bearer api-secret"
    verdict, _ = fetch(
        session, f"{home.origin}/download?token={TOKEN}", len(data), allowed_origin=f"{home.origin}/osc-fr1"
    )
    assert verdict.outcome is Outcome.OK, verdict
    assert [s.path.partition("?")[0] for s in home.seen] == ["/download", "/store/archive.tar.gz"]
    assert all("authorization" not in s.headers for s in home.seen)


def test_given_an_allowed_origin_a_redirect_anywhere_else_is_not_followed(
    servers: Callable[[Route], Server], session: requests.Session
) -> None:
    # the allowed origin, when given, is the database API's, whatever the link's own is
    data = good("postgresql")
    api = servers(archive(data))
    link = servers(redirect_to(lambda: "/elsewhere"))
    verdict, _ = fetch(session, f"{link.origin}/download?token={TOKEN}", len(data), allowed_origin=api.origin)
    assert (verdict.outcome, verdict.code) == (Outcome.NOT_RUN, "refused"), verdict
    assert len(link.seen) == 1


def test_endless_redirects_stop(servers: Callable[[Route], Server], session: requests.Session) -> None:
    home = servers(redirect_to(lambda: f"/download?token={TOKEN}"))
    verdict, _ = fetch(session, f"{home.origin}/download?token={TOKEN}", None)
    assert (verdict.outcome, verdict.code) == (Outcome.NOT_RUN, "refused"), verdict
    assert "redirects more than" in verdict.detail
    assert len(home.seen) == 6
