"""The Scalingo HTTP client: token exchange, addon tokens, the database API and discovery."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader, ReadTimeoutError
from urllib3.util.retry import Retry

from backup_monitor import __version__
from backup_monitor.config import Settings, Target
from backup_monitor.scalingo.errors import (
    AuthenticationError,
    LinkRejectedError,
    NotFoundError,
    PayloadError,
    ScalingoError,
    UnavailableError,
)
from backup_monitor.scalingo.limiter import RateLimiter
from backup_monitor.scalingo.models import (
    Backup,
    Database,
    DiscoveredDatabase,
    parse_addons,
    parse_apps,
    parse_backups,
    parse_database,
    parse_token,
)
from backup_monitor.scalingo.tokens import BEARER_KEY, TokenCache, addon_key
from backup_monitor.sealing import TokenSealer

logger = logging.getLogger(__name__)

# 429 is not retried per request: the client's limiters handle it once for every worker (shared back-off).
RETRY_STATUSES = (500, 502, 503, 504)
MAX_RETRY_AFTER_SECONDS = 30.0
RATE_LIMITED_ATTEMPTS = 5
USER_AGENT = f"scalingo-backup-monitor/{__version__}"


class _CappedRetry(Retry):
    """urllib3 Retry that honours Retry-After but never sleeps longer than a Lambda can afford."""

    def get_retry_after(self, response: Any) -> float | None:
        retry_after = super().get_retry_after(response)
        if retry_after is None:
            return None
        return min(retry_after, MAX_RETRY_AFTER_SECONDS)


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
    """Talks to the three Scalingo hosts with cached tokens; every call has a timeout."""

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
        self._timeout = (min(5.0, timeout), timeout)
        self._session = session or build_session()
        self.limiter = limiter or RateLimiter(rate_limit_per_minute, window=window_seconds)
        self._window = window_seconds
        self._host_limiters: dict[str, RateLimiter] = {}
        self._host_guard = threading.Lock()
        self._deadline: float | None = None
        self.tokens = TokenCache(clock=clock)
        self.sealer = TokenSealer(api_token)
        self.main_api_requests = 0
        self.db_api_requests = 0
        self.auth_requests = 0

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

    def begin_check(self, deadline: float | None = None) -> None:
        """A new check: limits back to their configured values; no main-API request starts after `deadline`
        (a `time.monotonic()` value, None for no limit)."""
        self._deadline = deadline
        self.limiter.reset()
        with self._host_guard:
            for limiter in self._host_limiters.values():
                limiter.reset()

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

    def list_backups(self, target: Target) -> list[Backup]:
        """The database's backups, newest first."""
        return parse_backups(self._db_get(target, "/backups"))

    def get_database(self, target: Target) -> Database:
        """The database: whether periodic backups are on and their UTC hours."""
        return parse_database(self._db_get(target, ""))

    def archive_link(self, target: Target, backup_id: str) -> str:
        """The temporary download URL of one backup, only if it points at the configured database API."""
        payload = self._db_get(target, f"/backups/{quote(backup_id, safe='')}/archive")
        if not isinstance(payload, dict) or not isinstance(payload.get("download_url"), str):
            raise PayloadError("archive response: field 'download_url' is missing")
        url: str = payload["download_url"]
        self._check_link(url, target.region)
        return url

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
            apps = parse_apps(self._main("GET", region, "/v1/apps"))
            for app in apps:
                if exclude is not None and exclude(app):
                    if excluded is not None:
                        excluded.append(app)
                    continue
                payload = self._main("GET", region, f"/v1/apps/{quote(app, safe='')}/addons")
                found.extend(parse_addons(payload, region, app))
        return found

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
        url = f"{self._auth_url}/v1/tokens/exchange"
        limiter = self._host_limiter(url)
        response = self._limited(limiter, "auth", "POST", url, "token exchange", auth=("", self._api_token))
        if response.status_code in (401, 403):
            renewed = self._renew_token() if self._renew_token else None
            if renewed and renewed != self._api_token:  # rotated: exchange the new token (refused again: error)
                self._api_token = renewed
                self.sealer = TokenSealer(renewed)  # tokens stored from now on open with the new API token
                return self._exchange()
            raise AuthenticationError("token exchange: the Scalingo API token was refused")
        return parse_token(self._json(response, "token exchange"), "token exchange")

    def _bearer(self) -> str:
        return self.tokens.get(BEARER_KEY, self._exchange)

    def _addon_token(self, target: Target) -> str:
        def fetch() -> str:
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
            url = f"{self.api_base(region)}{path}"
            headers = {"Authorization": f"Bearer {bearer}"}
            response = self._limited(self.limiter, "main", method, url, what, self._deadline, headers=headers)
            if response.status_code == 401 and attempt == 1:
                logger.info("bearer refused, renewing", extra={"call": what})
                self.tokens.drop(BEARER_KEY, bearer)
                continue
            return self._json(response, what)
        raise AssertionError("unreachable")  # pragma: no cover

    def _db_get(self, target: Target, suffix: str) -> Any:
        """A database-API GET with the addon token; one renewal on 401."""
        path = f"/api/databases/{quote(target.addon_id, safe='')}{suffix}"
        what = f"GET {path} ({target.app})"
        for attempt in (1, 2):
            token = self._addon_token(target)
            url = f"{self.db_api_base(target.region)}{path}"
            headers = {"Authorization": f"Bearer {token}"}
            response = self._limited(self._host_limiter(url), "db", "GET", url, what, headers=headers)
            if response.status_code == 401 and attempt == 1:
                logger.info("addon token refused, renewing", extra={"call": what})
                self.tokens.drop(addon_key(target.key), token)
                continue
            return self._json(response, what)
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
    ) -> requests.Response:
        """One call under `limiter`; a 429 pauses every worker on that limiter, then the call is tried again."""
        for _ in range(RATE_LIMITED_ATTEMPTS):
            sent_at = limiter.acquire(deadline)
            self._counted(api)
            response = self._send(method, url, what, **kwargs)
            if response.status_code != 429:
                limiter.succeeded()
                return response
            pause = limiter.back_off(sent_at, _retry_after(response))
            logger.info("rate limited, every worker pauses", extra={"call": what, "pause_s": round(pause, 1)})
        return response

    def _counted(self, api: str) -> None:
        with self._host_guard:
            if api == "main":
                self.main_api_requests += 1
            elif api == "db":
                self.db_api_requests += 1
            else:
                self.auth_requests += 1

    def _send(self, method: str, url: str, what: str, **kwargs: Any) -> requests.Response:
        try:
            return self._session.request(method, url, timeout=self._timeout, **kwargs)
        except requests.Timeout:
            raise UnavailableError(f"{what}: Scalingo did not answer in time") from None
        except requests.RequestException as exc:
            # After the last retry, requests wraps a read timeout in a ConnectionError.
            if isinstance(getattr(exc.args[0] if exc.args else None, "reason", None), ReadTimeoutError):
                raise UnavailableError(f"{what}: Scalingo did not answer in time") from None
            raise UnavailableError(f"{what}: Scalingo could not be reached ({type(exc).__name__})") from None

    @staticmethod
    def _json(response: requests.Response, what: str) -> Any:
        status = response.status_code
        if status in (401, 403):
            raise AuthenticationError(f"{what}: refused ({status})")
        if status == 404:
            raise NotFoundError(f"{what}: not found")
        if status == 429 or status >= 500:
            raise UnavailableError(f"{what}: Scalingo kept answering {status} after retries")
        if status >= 400:
            raise ScalingoError(f"{what}: Scalingo answered {status}")
        try:
            return response.json()
        except ValueError:
            raise PayloadError(f"{what}: the answer is not valid JSON") from None


def _retry_after(response: requests.Response) -> float | None:
    """Retry-After in seconds (a number or an HTTP date), capped; None when absent or unreadable."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = Retry().parse_retry_after(value)
    except InvalidHeader:
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)
