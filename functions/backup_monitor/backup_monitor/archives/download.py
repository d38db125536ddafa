"""Streams an archive from its download link into the verifier: redirects kept on its origin, bytes never stored."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import requests.auth
from urllib3.exceptions import HTTPError, ProtocolError, ReadTimeoutError

from backup_monitor.archives import inflate
from backup_monitor.archives.stream import verify_chunks
from backup_monitor.archives.verdict import CannotVerifyError, Outcome, Verdict
from backup_monitor.scalingo.client import redact_url

logger = logging.getLogger(__name__)

CHUNK = 256 * 1024
MAX_REDIRECTS = 5
MIN_WAIT = 0.01  # a socket timeout of 0 would mean non-blocking
_QUERY = re.compile(r"\?[^\s\"']*")


class RedactQueryFilter(logging.Filter):
    """urllib3 logs request URLs at DEBUG; a download link's query holds its token (or a pre-signed signature)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_QUERY.sub("?…", a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str) and "?" in record.msg:
            record.msg = _QUERY.sub("?…", record.msg)
        return True


def _redact_urllib3_logs() -> None:
    """Install the filter once on the logger that prints URLs (connection pool: requests, retries, redirects)."""
    pool_logger = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, RedactQueryFilter) for f in pool_logger.filters):
        pool_logger.addFilter(RedactQueryFilter())


def too_big(size: int, max_bytes: int) -> Verdict:
    """The verdict for an archive over VERIFY_MAX_GB (decided before downloading it when its size is known)."""
    allowed = f"{max_bytes / 1e9:g} GB"
    return Verdict(
        Outcome.NOT_RUN, "too_big", f"the archive ({size / 1e9:.1f} GB) is larger than VERIFY_MAX_GB ({allowed})"
    )


def _socket_of(response: requests.Response) -> Any:
    """The socket under a streamed response (urllib3 keeps its connection on it), or None if it cannot be had."""
    sock = getattr(getattr(response.raw, "connection", None), "sock", None)
    return sock if callable(getattr(sock, "settimeout", None)) else None


def _out_of_time(received: int, seconds: float) -> CannotVerifyError:
    return CannotVerifyError("out_of_time", f"out of time after {received / 1_000_000:.1f} MB in {seconds:.0f} s")


def _chunks(
    response: requests.Response,
    *,
    start: float,
    deadline: float,
    read_timeout: float,
    clock: Callable[[], float],
) -> Iterator[bytes]:
    """The raw body (no content decoding: the bytes are the archive's), network faults as CannotVerifyError.

    Each read takes what has arrived (at most CHUNK bytes) and waits at most `read_timeout`, never past
    `deadline`, which is checked after every read: a server dripping bytes cannot stretch the download."""
    received = 0
    sock = _socket_of(response)
    while True:
        left = deadline - clock()
        if left <= 0:
            raise _out_of_time(received, clock() - start)
        wait = min(read_timeout, left)
        if sock is not None:
            sock.settimeout(max(wait, MIN_WAIT))
        try:
            chunk = response.raw.read1(CHUNK, decode_content=False)
        except ReadTimeoutError:
            if wait < read_timeout:  # the deadline, not the server's silence, cut this wait short
                raise _out_of_time(received, clock() - start) from None
            raise CannotVerifyError("stalled", f"the download stalled after {received} bytes") from None
        except (ProtocolError, HTTPError, OSError) as exc:
            raise CannotVerifyError(
                "interrupted", f"the download broke off after {received} bytes ({type(exc).__name__})"
            ) from None
        if not chunk:
            return
        received += len(chunk)
        yield chunk


def _bounded(timeout: float, deadline: float, clock: Callable[[], float]) -> float:
    """A socket timeout that ends no later than `deadline`."""
    return max(min(timeout, deadline - clock()), MIN_WAIT)


class _NoCredentials(requests.auth.AuthBase):
    """Strips any Authorization header (a session default, ~/.netrc): a download link carries its own token."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.pop("Authorization", None)
        return request


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL, the default port made explicit; ValueError if its port is not one."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, parts.hostname or "", parts.port or _DEFAULT_PORTS.get(scheme)


def _host_of(url: str) -> str:
    """Host and port of a URL for people: never its user info, path or query (a token may be in any)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    host = f"[{host}]" if ":" in host else host
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port else host


def _get_at_home(
    session: requests.Session,
    url: str,
    allowed_origin: str,
    start: float,
    deadline: float,
    connect_timeout: float,
    read_timeout: float,
    clock: Callable[[], float],
) -> requests.Response:
    """GET `url` as a stream, following at most MAX_REDIRECTS redirects, each only if it stays on `allowed_origin`.

    Raises CannotVerifyError for a redirect elsewhere, too many redirects or no time left."""
    try:
        home = _origin(allowed_origin)
    except ValueError:
        raise CannotVerifyError(
            "refused", f"the allowed origin has no valid port ({_host_of(allowed_origin)})"
        ) from None
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        if deadline - clock() <= 0:
            raise _out_of_time(0, clock() - start)
        response = session.get(
            current,
            stream=True,
            timeout=(_bounded(connect_timeout, deadline, clock), _bounded(read_timeout, deadline, clock)),
            allow_redirects=False,
            headers={"Accept": "*/*", "Accept-Encoding": "identity"},
            auth=_NoCredentials(),
        )
        location = session.get_redirect_target(response) if response.is_redirect else None
        if location is None:
            return response
        response.close()
        target = urljoin(current, location)
        try:
            same_origin = _origin(target) == home
        except ValueError:
            same_origin = False
        if not same_origin:
            raise CannotVerifyError(
                "refused", f"the download link redirects to another host ({_host_of(target)}): not followed"
            )
        current = target
    raise CannotVerifyError("refused", f"the download link redirects more than {MAX_REDIRECTS} times")


def download_and_verify(
    session: requests.Session,
    url: str,
    *,
    type_name: str,
    listed_size: int | None,
    max_bytes: int,
    time_limit: float,
    read_timeout: float = 30.0,
    connect_timeout: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
    allowed_origin: str | None = None,
) -> Verdict:
    """GET `url` as a stream and verify it; the link's token never reaches a log or a verdict.

    Redirects are followed only on `allowed_origin` (scheme, host and port of that URL; by default the link's
    own), never with credentials. Every wait (connect, headers, each read of the body) ends by `time_limit`
    after the start, and the time is checked after every read."""
    start = clock()
    _redact_urllib3_logs()
    if listed_size is not None and listed_size > max_bytes:
        return too_big(listed_size, max_bytes)
    deadline = start + time_limit
    try:
        response = _get_at_home(
            session, url, allowed_origin or url, start, deadline, connect_timeout, read_timeout, clock
        )
    except CannotVerifyError as exc:
        return Verdict(Outcome.NOT_RUN, exc.code, exc.detail)
    except requests.Timeout:
        return Verdict(Outcome.NOT_RUN, "unreachable", "the download link did not answer in time")
    except requests.RequestException as exc:
        return Verdict(Outcome.NOT_RUN, "unreachable", f"the download link could not be reached ({type(exc).__name__})")
    with response:
        if response.status_code != 200:
            return Verdict(Outcome.NOT_RUN, "refused", f"the download was refused (HTTP {response.status_code})")
        announced = response.headers.get("Content-Length", "")
        if announced.isdigit():
            length = int(announced)
            if listed_size and length != listed_size:
                return Verdict(
                    Outcome.FAILED,
                    "size_mismatch",
                    f"the server sends {length} bytes where the backup list says {listed_size}",
                )
            if length > max_bytes:
                return too_big(length, max_bytes)
        verdict = verify_chunks(
            _chunks(response, start=start, deadline=deadline, read_timeout=read_timeout, clock=clock),
            type_name=type_name,
            listed_size=listed_size,
            max_bytes=max_bytes,
            deadline=deadline,
            clock=clock,
        )
    logger.info(
        "archive verification finished",
        extra={
            "url": redact_url(url),
            "outcome": verdict.outcome.value,
            "code": verdict.code,
            "bytes": verdict.received,
            "seconds": verdict.seconds,
            "inflater": inflate.INFLATER,
        },
    )
    return verdict
