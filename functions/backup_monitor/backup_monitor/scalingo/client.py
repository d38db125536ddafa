"""The Scalingo HTTP client: token exchange, addon tokens, the database API and discovery."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import quote, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import InvalidHeader, ReadTimeoutError
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry
from urllib3.util.timeout import Timeout

from backup_monitor import __version__
from backup_monitor.config import Settings, Target
from backup_monitor.progress import NO_PROGRESS, SCALINGO_RATE_LIMIT, Progress
from backup_monitor.scalingo.errors import (
    AuthenticationError,
    LinkRejectedError,
    NotFoundError,
    OutOfTimeError,
    PayloadError,
    RedirectRefusedError,
    ScalingoError,
    UnavailableError,
)
from backup_monitor.scalingo.limiter import RateLimiter
from backup_monitor.scalingo.models import (
    Backup,
    BackupListing,
    Database,
    DiscoveredDatabase,
    RecoveryWindow,
    parse_addons,
    parse_apps,
    parse_backup_listing,
    parse_database,
    parse_recovery_window,
    parse_token,
    usable_backups,
)
from backup_monitor.scalingo.tokens import BEARER_KEY, TokenCache, addon_key
from backup_monitor.sealing import TokenSealer

logger = logging.getLogger(__name__)

# 429 is not retried per request: the client's limiters handle it once for every worker (shared back-off).
RETRY_STATUSES = (500, 502, 503, 504)
MAX_RETRY_AFTER_SECONDS = 30.0
RATE_LIMITED_ATTEMPTS = 5
USER_AGENT = f"scalingo-backup-monitor/{__version__}"

# What the recovery-window call answers for a database without point-in-time recovery (not PostgreSQL, or
# PITR off): an answer, not an error. A 404 there is not the database being gone (the backups call says that).
NO_RECOVERY_WINDOW_STATUSES = frozenset({400, 404})


# Every Scalingo JSON answer is read into memory up to this size, no further: 8 MiB. Retention keeps a list
# under a hundred backups (about 300 bytes each) and discovery pages hold one account's apps or one app's
# addons, so a real answer is a few hundred kB at most; more is a broken or hostile server.
MAX_JSON_BYTES = 8 * 1024 * 1024
# The check's deadline (begin_check) is when no new database starts; the reads of one started just before it
# may go on after it, by this much at most. The Lambda keeps 60 s past that deadline for in-flight calls,
# sending and saving (budget.LAMBDA_SAFETY_MARGIN_SECONDS); without this bound a slow call could use it all.
IN_FLIGHT_GRACE_SECONDS = 20.0
# At most this many redirects are followed per call, and only on the same scheme, host and port.
MAX_REDIRECTS = 5
# Bytes asked of the socket per read of an answer's body (the deadline is checked between reads).
READ_CHUNK_BYTES = 64 * 1024
# The connect timeout of one attempt never exceeds this (nor what is left of the call's deadline).
CONNECT_TIMEOUT_SECONDS = 5.0
_MIN_SOCKET_TIMEOUT = 0.001  # urllib3 refuses 0: the deadline itself is checked before and after every read

# The wall-clock deadline of the call the current thread is making (time.monotonic()), read by the retry
# policy so that a back-off never sleeps past it. None outside a Scalingo API call (archive downloads).
_CALL = threading.local()


class _NoTimeToRetry(Exception):
    """urllib3 wanted to retry, but its back-off would end past the call's deadline."""

    def __init__(self, status: int | None) -> None:
        super().__init__(status)
        self.status = status


class _CappedRetry(Retry):
    """urllib3 Retry that honours Retry-After but never sleeps longer than a Lambda can afford, nor past the
    deadline of the Scalingo call being made (it gives up instead: the call fails at once)."""

    def get_retry_after(self, response: Any) -> float | None:
        retry_after = super().get_retry_after(response)
        if retry_after is None:
            return None
        return min(retry_after, MAX_RETRY_AFTER_SECONDS)

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        pause: float | None = None
        if self.respect_retry_after_header and response is not None:
            pause = self.get_retry_after(response)
        if not pause:
            pause = self.get_backoff_time()
        deadline: float | None = getattr(_CALL, "deadline", None)
        if deadline is not None and time.monotonic() + pause >= deadline:
            raise _NoTimeToRetry(response.status if response is not None else None)
        if pause > 0:
            time.sleep(pause)


class _DeadlineTimeout(Timeout):
    """A urllib3 Timeout bound to a wall-clock deadline. urllib3 clones the timeout for every attempt
    (retries included); each clone allows only what is left until the deadline, for connecting and for the
    answer's headers. The body is read under the same deadline by the client."""

    def __init__(self, deadline: float, connect: float) -> None:
        super().__init__(connect=connect, read=connect)
        self.deadline = deadline
        self.connect_cap = connect

    def clone(self) -> Timeout:
        left = max(self.deadline - time.monotonic(), _MIN_SOCKET_TIMEOUT)
        return Timeout(connect=min(self.connect_cap, left), read=left, total=left)


@dataclass(frozen=True, slots=True)
class _Reply:
    """One answer, read whole (the body only for a 2xx, within MAX_JSON_BYTES); the connection is released."""

    status: int
    headers: Mapping[str, str]
    body: bytes = b""


@contextmanager
def _for_api(api: str) -> Iterator[None]:
    """Errors raised inside name `api`, unless a call nested inside (a token fetch) named its own."""
    try:
        yield
    except ScalingoError as exc:
        if not exc.api:
            exc.api = api
        raise


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1  # unreadable: never equal to a real origin
    return scheme, parts.hostname or "", port or {"http": 80, "https": 443}.get(scheme)


def _host_of(url: str) -> str:
    """The host (and port) of a URL for an error message: no user info, path or query."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = (parts.hostname or "?")[:100]
    return f"{host}:{port}" if port else host


def build_session(retries: int = 3, backoff_factor: float = 0.5, pool_size: int = 16) -> requests.Session:
    """One session for every Scalingo call: pooled connections, retries with backoff on 5xx and connection
    errors (429 is left to the client's shared back-off)."""
    retry = _CappedRetry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff_factor,
        backoff_max=20.0,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "POST"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry, pool_connections=pool_size, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
    return session


def redact_url(url: str) -> str:
    """A URL fit for logs: scheme, host and path, never the query string."""
    parts = urlsplit(url)
    suffix = "?…" if parts.query else ""
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}{suffix}"


class ScalingoClient:
    """Talks to the three Scalingo hosts with cached tokens.

    Every call (connect, urllib3's retries and back-offs, every redirect and the whole answer) ends by a
    wall-clock deadline: `timeout` seconds (HTTP_TIMEOUT_SECONDS) after it starts, or the check's deadline plus
    IN_FLIGHT_GRACE_SECONDS (`begin_check`) when sooner. An answer is read up to MAX_JSON_BYTES, and redirects
    are followed only on the same scheme, host and port."""

    def __init__(
        self,
        api_token: str,
        *,
        auth_url: str,
        api_url: str,
        db_api_url: str,
        rate_limit_per_minute: int = 60,
        timeout: float = 10.0,
        session: requests.Session | None = None,
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.time,
        window_seconds: float = 60.0,
        renew_token: Callable[[], str | None] | None = None,
    ) -> None:
        """`renew_token`: asked for a newer API token when the exchange refuses this one (None: there is none)."""
        if not api_token:
            raise AuthenticationError("no Scalingo API token was given")
        self._api_token = api_token
        self._renew_token = renew_token
        self._auth_url = auth_url.rstrip("/")
        self._api_url = api_url
        self._db_api_url = db_api_url
        self._timeout = timeout
        self._clock = clock
        self._session = session or build_session()
        self.limiter = limiter or RateLimiter(rate_limit_per_minute, window=window_seconds)
        self._window = window_seconds
        self._host_limiters: dict[str, RateLimiter] = {}
        self._host_guard = threading.Lock()
        self._deadline: float | None = None
        self._hard_deadline: float | None = None
        self.tokens = TokenCache(clock=clock)
        self.sealer = TokenSealer(api_token)
        self.main_api_requests = 0
        self.db_api_requests = 0
        self.auth_requests = 0
        self._progress: Progress = NO_PROGRESS

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        session: requests.Session | None = None,
        renew_token: Callable[[], str | None] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        window_seconds: float = 60.0,
    ) -> ScalingoClient:
        """A client configured from the settings (the API token must be resolved already).

        `window_seconds` shortens the rate-limit window (tests and the benchmark run on a scaled clock)."""
        return cls(
            settings.api_token or "",
            auth_url=settings.auth_url,
            api_url=settings.api_url,
            db_api_url=settings.db_api_url,
            rate_limit_per_minute=settings.api_rate_limit,
            timeout=settings.http_timeout,
            session=session,
            clock=clock,
            window_seconds=window_seconds,
            renew_token=renew_token,
        )

    def __repr__(self) -> str:
        return f"ScalingoClient(auth_url={self._auth_url!r}, api_url={self._api_url!r})"

    # -- one check -----------------------------------------------------------------------------------------

    def begin_check(
        self,
        deadline: float | None = None,
        grace: float = IN_FLIGHT_GRACE_SECONDS,
        *,
        progress: Progress = NO_PROGRESS,
    ) -> None:
        """A new check: limits back to their configured values; no main-API request starts after `deadline`
        (a `time.monotonic()` value, None for no limit), and no request at all runs past `deadline + grace`
        (a call cut by it, or starting past it, is an OutOfTimeError). `progress` is told of each request,
        rate-limit wait and discovery step of this check."""
        self._progress = progress
        self._deadline = deadline
        self._hard_deadline = None if deadline is None else deadline + max(grace, 0.0)
        self.limiter.reset()
        with self._host_guard:
            for limiter in self._host_limiters.values():
                limiter.reset()

    def has_time(self) -> bool:
        """Whether the check's fetching time is not over (an optional read, such as point-in-time recovery's
        window, is not started after it: only what a database's verdict needs may use the grace)."""
        return self._deadline is None or time.monotonic() < self._deadline

    def interrupt(self) -> None:
        """The check was interrupted: no call starts from now on (calls in flight end by their own deadline)."""
        now = time.monotonic()
        self._deadline = now
        self._hard_deadline = now

    def needs_token(self, target: Target) -> bool:
        """Whether checking `target` now costs a main-API request (its addon token is absent or due)."""
        return not self.tokens.is_fresh(addon_key(target.key))

    def token_expiry(self, target: Target) -> float:
        """When the cached addon token of `target` expires (0 when there is none): the most urgent renew first."""
        return self.tokens.expires_at(addon_key(target.key))

    @property
    def rate_limited(self) -> int:
        """429 answers received, every host together."""
        with self._host_guard:
            return self.limiter.rate_limited + sum(lim.rate_limited for lim in self._host_limiters.values())

    def _host_limiter(self, url: str) -> RateLimiter:
        host = urlsplit(url).netloc
        with self._host_guard:
            limiter = self._host_limiters.get(host)
            if limiter is None:
                limiter = self._host_limiters[host] = RateLimiter(None, window=self._window)
            return limiter

    # -- base URLs ---------------------------------------------------------------------------------------

    def api_base(self, region: str) -> str:
        return self._api_url.replace("{region}", region).rstrip("/")

    def db_api_base(self, region: str) -> str:
        return self._db_api_url.replace("{region}", region).rstrip("/")

    # -- public calls ------------------------------------------------------------------------------------

    def read_backups(self, target: Target) -> BackupListing:
        """The database's backups, newest first, with the entries that could not be read skipped and counted
        (and logged: index and field, never the body). An unusable answer as a whole is a PayloadError."""
        with _for_api("db"):
            listing = parse_backup_listing(self._db_get(target, "/backups"))
        if not listing.complete:
            logger.warning(
                "backup entries skipped",
                extra={
                    "target": target.key,
                    "skipped": listing.skipped,
                    "duplicates": listing.duplicates,
                    "problems": list(listing.problems),
                },
            )
        return listing

    def list_backups(self, target: Target) -> list[Backup]:
        """The database's readable backups, newest first (see `read_backups`); a PayloadError when the list
        had entries and none could be read."""
        listing = self.read_backups(target)
        with _for_api("db"):
            return usable_backups(listing)

    def get_database(self, target: Target) -> Database:
        """The database: whether periodic backups are on and their UTC hours."""
        with _for_api("db"):
            return parse_database(self._db_get(target, ""))

    def archive_link(self, target: Target, backup_id: str) -> str:
        """The temporary download URL of one backup, only if it points at the configured database API."""
        with _for_api("db"):
            payload = self._db_get(target, f"/backups/{quote(backup_id, safe='')}/archive")
            if not isinstance(payload, dict) or not isinstance(payload.get("download_url"), str):
                raise PayloadError("archive response: field 'download_url' is missing")
            url: str = payload["download_url"]
            self._check_link(url, target.region)
            return url

    def recovery_window(self, target: Target) -> RecoveryWindow | None:
        """The database's point-in-time recovery window; None when it has none (a 404 or 400 answer, which
        neither drops the addon token nor raises NotFoundError). Other failures raise as the other calls do."""
        with _for_api("db"):
            reply, what = self._db_reply(target, "/pitr/recovery_window")
            if reply.status in NO_RECOVERY_WINDOW_STATUSES:
                return None
            now = datetime.fromtimestamp(self._clock(), UTC)
            return parse_recovery_window(self._json(reply, what), now=now)

    def discover(
        self,
        regions: Iterable[str],
        *,
        exclude: Callable[[str], bool] | None = None,
        excluded: list[str] | None = None,
    ) -> list[DiscoveredDatabase]:
        """Every database addon the token can see, in the given regions; other addons are skipped.

        Apps for which `exclude` is true cost no request; their names are appended to `excluded`.
        """
        found: list[DiscoveredDatabase] = []
        for region in regions:
            for app in self.list_apps(region, exclude=exclude, excluded=excluded):
                found.extend(self.list_addons(region, app))
        return found

    def list_apps(
        self, region: str, *, exclude: Callable[[str], bool] | None = None, excluded: list[str] | None = None
    ) -> list[str]:
        """The apps the token can see in `region` (one main-API request), less those `exclude` matches (their
        names are appended to `excluded`)."""
        with _for_api("main"):
            apps = parse_apps(self._main("GET", region, "/v1/apps"))
        kept = []
        for app in apps:
            if exclude is not None and exclude(app):
                if excluded is not None:
                    excluded.append(app)
                continue
            kept.append(app)
        self._progress.apps_found(len(kept))
        return kept

    def list_addons(self, region: str, app: str) -> list[DiscoveredDatabase]:
        """The database addons of one app (one main-API request); other addons are skipped."""
        with _for_api("main"):
            payload = self._main("GET", region, f"/v1/apps/{quote(app, safe='')}/addons")
            found = parse_addons(payload, region, app)
        self._progress.app_listed()
        return found

    def requests_within(self, seconds: float) -> int:
        """How many main-API requests the rate limit allows in `seconds`."""
        per_window = self.limiter.configured
        return 1_000_000 if per_window is None else int(per_window * seconds / self._window)

    # -- links -------------------------------------------------------------------------------------------

    def _check_link(self, url: str, region: str) -> None:
        expected = urlsplit(self.db_api_base(region))
        actual = urlsplit(url)
        allowed_schemes = {"https", expected.scheme}
        if actual.scheme not in allowed_schemes or actual.hostname != expected.hostname:
            raise LinkRejectedError(
                f"download link rejected: host {actual.hostname or '?'!s} with scheme {actual.scheme or '?'} "
                f"is not the database API ({expected.hostname})"
            )
        if actual.port != expected.port and actual.scheme == expected.scheme:
            raise LinkRejectedError(
                f"download link rejected: port {actual.port} is not the database API's ({expected.port})"
            )

    # -- tokens ------------------------------------------------------------------------------------------

    def _exchange(self) -> str:
        with _for_api("auth"):
            url = f"{self._auth_url}/v1/tokens/exchange"
            limiter = self._host_limiter(url)
            reply = self._limited(limiter, "auth", "POST", url, "token exchange", auth=("", self._api_token))
            if reply.status in (401, 403):
                renewed = self._renew_token() if self._renew_token else None
                if renewed and renewed != self._api_token:  # rotated: exchange the new token (refused again: error)
                    self._api_token = renewed
                    self.sealer = TokenSealer(renewed)  # tokens stored from now on open with the new API token
                    return self._exchange()
                raise AuthenticationError("token exchange: the Scalingo API token was refused")
            return parse_token(self._json(reply, "token exchange"), "token exchange")

    def _bearer(self) -> str:
        return self.tokens.get(BEARER_KEY, self._exchange)

    def _addon_token(self, target: Target) -> str:
        def fetch() -> str:
            with _for_api("main"):
                path = f"/v1/apps/{quote(target.app, safe='')}/addons/{quote(target.addon_id, safe='')}/token"
                payload = self._main("POST", target.region, path)
                return parse_token(payload, f"addon token of {target.app}/{target.addon_id}", ("addon", "token"))

        return self.tokens.get(addon_key(target.key), fetch)

    # -- requests ----------------------------------------------------------------------------------------

    def _main(self, method: str, region: str, path: str) -> Any:
        """A main-API call with the bearer, under the rate limiter; one renewal on 401."""
        what = f"{method} {path}"
        for attempt in (1, 2):
            bearer = self._bearer()
            with _for_api("main"):
                url = f"{self.api_base(region)}{path}"
                headers = {"Authorization": f"Bearer {bearer}"}
                reply = self._limited(self.limiter, "main", method, url, what, self._deadline, headers=headers)
                if reply.status == 401 and attempt == 1:
                    logger.info("bearer refused, renewing", extra={"call": what})
                    self.tokens.drop(BEARER_KEY, bearer)
                    continue
                return self._json(reply, what)
        raise AssertionError("unreachable")  # pragma: no cover

    def _db_get(self, target: Target, suffix: str) -> Any:
        """A database-API GET with the addon token, read as JSON; one renewal on 401."""
        reply, what = self._db_reply(target, suffix)
        with _for_api("db"):
            return self._json(reply, what)

    def _db_reply(self, target: Target, suffix: str) -> tuple[_Reply, str]:
        """A database-API GET with the addon token, one renewal on 401: the answer as received (for a caller
        that takes some statuses as an answer before `_json`), and how errors name the call."""
        path = f"/api/databases/{quote(target.addon_id, safe='')}{suffix}"
        what = f"GET {path} ({target.app})"
        for attempt in (1, 2):
            token = self._addon_token(target)
            with _for_api("db"):
                url = f"{self.db_api_base(target.region)}{path}"
                headers = {"Authorization": f"Bearer {token}"}
                reply = self._limited(self._host_limiter(url), "db", "GET", url, what, headers=headers)
            if reply.status == 401 and attempt == 1:
                logger.info("addon token refused, renewing", extra={"call": what})
                self.tokens.drop(addon_key(target.key), token)
                continue
            return reply, what
        raise AssertionError("unreachable")  # pragma: no cover

    def _limited(
        self,
        limiter: RateLimiter,
        api: str,
        method: str,
        url: str,
        what: str,
        deadline: float | None = None,
        **kwargs: Any,
    ) -> _Reply:
        """One call under `limiter`; a 429 pauses every worker on that limiter, then the call is tried again."""
        for _ in range(RATE_LIMITED_ATTEMPTS):
            sent_at = limiter.acquire(deadline, self._waiting)
            self._counted(api)
            reply = self._send(api, method, url, what, **kwargs)
            if reply.status != 429:
                limiter.succeeded()
                return reply
            pause = limiter.back_off(sent_at, _retry_after(reply))
            logger.info("rate limited, every worker pauses", extra={"call": what, "pause_s": round(pause, 1)})
        return reply

    def _waiting(self, seconds: float) -> None:
        self._progress.waiting(seconds, SCALINGO_RATE_LIMIT)

    def _counted(self, api: str) -> None:
        self._progress.request()
        with self._host_guard:
            if api == "main":
                self.main_api_requests += 1
            elif api == "db":
                self.db_api_requests += 1
            else:
                self.auth_requests += 1

    def _call_deadline(self, what: str) -> tuple[float, bool]:
        """The deadline of a call starting now, and whether it is the check's (rather than the timeout's).

        OutOfTimeError when the check's time, grace included, is spent already: the call is not made."""
        now = time.monotonic()
        own = now + self._timeout
        check = self._hard_deadline
        if check is None or own <= check:
            return own, False
        if check <= now:
            raise OutOfTimeError(f"{what}: the check's time budget is spent")
        return check, True

    def _send(self, api: str, method: str, url: str, what: str, **kwargs: Any) -> _Reply:
        """One call, read whole under its deadline; same-origin redirects are followed, others refused."""
        deadline, by_check = self._call_deadline(what)

        def late() -> ScalingoError:
            if by_check:
                return OutOfTimeError(f"{what}: the check's time budget ran out before Scalingo answered")
            return UnavailableError(f"{what}: Scalingo did not answer in time")

        headers = {"Accept-Encoding": "identity", **kwargs.pop("headers", {})}
        connect = min(CONNECT_TIMEOUT_SECONDS, self._timeout)
        _CALL.deadline = deadline
        try:
            for hop in range(MAX_REDIRECTS + 1):
                if hop:
                    self._counted(api)
                try:
                    response = self._session.request(
                        method,
                        url,
                        headers=headers,
                        # urllib3 takes its own Timeout where requests' annotations say float or tuple.
                        timeout=cast(Any, _DeadlineTimeout(deadline, connect)),
                        stream=True,
                        allow_redirects=False,
                        **kwargs,
                    )
                except _NoTimeToRetry as exc:
                    if exc.status is None:
                        raise late() from None
                    raise UnavailableError(
                        f"{what}: Scalingo answered {exc.status}, with no time left to retry"
                    ) from None
                except requests.Timeout:
                    raise late() from None
                except requests.RequestException as exc:
                    # After the last retry, requests wraps a read timeout in a ConnectionError.
                    if isinstance(getattr(exc.args[0] if exc.args else None, "reason", None), ReadTimeoutError):
                        raise late() from None
                    raise UnavailableError(f"{what}: Scalingo could not be reached ({type(exc).__name__})") from None
                with response:
                    if response.is_redirect:
                        url, method = _redirect_target(response, url, method, what)
                        continue
                    status = response.status_code
                    body = _read_body(response, deadline, what, late) if 200 <= status < 300 else b""
                    return _Reply(status, response.headers, body)
            raise RedirectRefusedError(f"{what}: more than {MAX_REDIRECTS} redirects, not followed")
        finally:
            _CALL.deadline = None

    @staticmethod
    def _json(reply: _Reply, what: str) -> Any:
        status = reply.status
        if status in (401, 403):
            raise AuthenticationError(f"{what}: refused ({status})")
        if status == 404:
            raise NotFoundError(f"{what}: not found")
        if status == 429 or status >= 500:
            raise UnavailableError(f"{what}: Scalingo kept answering {status} after retries")
        if status >= 300:
            raise ScalingoError(f"{what}: Scalingo answered {status}")
        try:
            return json.loads(reply.body)
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
            raise PayloadError(f"{what}: the answer is not valid JSON") from None


def _redirect_target(response: requests.Response, url: str, method: str, what: str) -> tuple[str, str]:
    """Where a redirect leads and with which method; RedirectRefusedError unless it stays on `url`'s origin
    (scheme, host and port): the Authorization header is never offered to anyone else."""
    target = urljoin(url, response.headers.get("Location", ""))
    if _origin(target) != _origin(url):
        raise RedirectRefusedError(
            f"{what}: Scalingo redirected the call to {_host_of(target)}, another host: not followed"
        )
    status = response.status_code
    if status == 303 or (status in (301, 302) and method == "POST"):
        method = "GET"  # what browsers (and requests) do
    return target, method


def _read_body(response: requests.Response, deadline: float, what: str, late: Callable[[], ScalingoError]) -> bytes:
    """The body, at most MAX_JSON_BYTES, read in chunks before `deadline`: each socket read may wait only
    for what is left of it, and nothing past the cap is read."""
    announced = response.headers.get("Content-Length", "").strip()
    if announced.isdigit() and int(announced) > MAX_JSON_BYTES:
        raise PayloadError(f"{what}: the answer ({announced} bytes announced) exceeded {MAX_JSON_BYTES} bytes")
    raw = response.raw
    # read1 returns what one socket read brings (urllib3 >= 2.3); read(n) waits for n bytes, however slowly sent.
    read: Callable[..., bytes] = getattr(raw, "read1", None) or raw.read
    body = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise late()
        _set_read_timeout(raw, left)
        try:
            chunk = read(READ_CHUNK_BYTES, decode_content=True)
        except ReadTimeoutError:
            raise late() from None
        except (Urllib3Error, OSError) as exc:
            raise UnavailableError(f"{what}: the answer broke off ({type(exc).__name__})") from None
        if not chunk:
            return bytes(body)
        body += chunk
        if len(body) > MAX_JSON_BYTES:
            raise PayloadError(f"{what}: the answer exceeded {MAX_JSON_BYTES} bytes")


def _set_read_timeout(raw: Any, seconds: float) -> None:
    """The socket under a streamed answer waits at most `seconds` for its next bytes."""
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if sock is not None:
        with suppress(OSError):  # closed under us: the read reports it
            sock.settimeout(max(seconds, _MIN_SOCKET_TIMEOUT))


def _retry_after(reply: _Reply) -> float | None:
    """Retry-After in seconds (a number or an HTTP date), capped; None when absent or unreadable."""
    value = reply.headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = Retry().parse_retry_after(value)
    except InvalidHeader:
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)
