"""A fake Scalingo (auth, main API and database API) on one loopback port, for the demo, tests and bench.

It enforces the three-token flow (API token -> bearer -> addon token), can add latency, answer 5xx, 429,
malformed bodies or missing fields, expire tokens and limit the main API's rate, and records every request.
Hostile answers too (see `fail`): a body dripped one byte at a time, a huge generated body, any headers (a
redirect elsewhere); and backup entries of any shape beside valid ones (`add_raw_backup`).
Paths may carry a leading region segment (``http://127.0.0.1:PORT/osc-fr1/v1/apps``) so one server can
stand for several regions; without one, the region is ``osc-fr1``.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

DATABASE_PROVIDERS = ("postgresql", "mysql", "mongodb", "redis", "influxdb", "elasticsearch", "opensearch")
DEFAULT_REGION = "osc-fr1"


@dataclass
class RecordedRequest:
    """One request as the fake saw it (tokens are not kept)."""

    method: str
    path: str
    region: str
    api: str  # "auth", "main" or "db"
    status: int
    at: float


@dataclass
class Fault:
    """An answer to give instead of the real one, `times` times, to requests whose path contains `match`.

    `headers` are added (a `Location` makes a redirect). `drip_seconds` sends the body one byte at a time,
    that many seconds apart, after headers announcing its full length (a slow-loris server). `size` replaces
    the body with a valid backups list of about that many bytes, generated while it is sent (never held
    whole), with a Content-Length header unless `announce_length` is false (then the end is the connection's
    close)."""

    match: str
    status: int
    body: str | None = None
    times: int = 1
    retry_after: str | None = None
    method: str | None = None
    content_type: str = "application/json"
    headers: dict[str, str] | None = None
    drip_seconds: float = 0.0
    size: int | None = None
    announce_length: bool = True


@dataclass
class StreamedBody:
    """A body sent in chunks, `delay` seconds apart; `length` is the Content-Length sent (None: none, and the
    connection closes at the end)."""

    chunks: Callable[[], Iterable[bytes]]
    length: int | None
    delay: float = 0.0


@dataclass
class FakeAddon:
    region: str
    app: str
    id: str
    provider: str
    resource_id: str
    database: dict[str, Any]
    backups: list[Any] = field(default_factory=list)  # dicts, but add_raw_backup may put anything
    # The point-in-time recovery window as served (the `recovery_window` object); None: no PITR, a 404.
    recovery_window: dict[str, str] | None = None


@dataclass
class FakeArchive:
    """What one backup's download link serves: bytes, or a generator of chunks (made on the fly, never stored)."""

    body: bytes | Callable[[], Iterable[bytes]]
    content_length: int | None = None  # the header sent; None: the body's own length (no header for a generator)
    redirect: bool = False  # answer 302 to an "object store" path first, as a proxy to S3 might
    chunk_size: int = 64 * 1024
    chunk_delay: float = 0.0  # seconds between chunks: a slow server
    stall_after: int | None = None  # stop sending after this many bytes and hold the connection
    stall_seconds: float = 5.0
    status: int = 200

    def chunks(self) -> Iterable[bytes]:
        if callable(self.body):
            return self.body()
        body = self.body
        return (body[i : i + self.chunk_size] for i in range(0, len(body), self.chunk_size))


def make_jwt(claims: dict[str, Any]) -> str:
    """An unsigned-looking JWT carrying `claims` (the client reads `exp` without verifying)."""

    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.{secrets.token_urlsafe(16)}"


def iso(moment: datetime) -> str:
    """Scalingo's timestamp style: ISO 8601 with milliseconds and an offset."""
    return moment.isoformat(timespec="milliseconds")


class FakeScalingo:
    """The fake's state and its seeding API; `start()` serves it on a free loopback port."""

    def __init__(self, api_token: str = "tk-us-fake-api-token", clock: Callable[[], float] = time.time) -> None:
        self.api_token = api_token
        self.clock = clock
        self.bearer_ttl = 3600.0
        self.addon_token_ttl = 3600.0
        self.latency = 0.0
        self.main_rate_limit: int | None = None
        self.main_rate_window = 60.0  # seconds; shorter on a scaled clock (tests, benchmark)
        self.rate_limit_retry_after: str | None = None
        self.link_base: str | None = None
        self.link_token_chars = 27  # length of a download link's `token=` value
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self._apps: dict[tuple[str, str], list[str]] = {}
        self._addons: dict[str, FakeAddon] = {}
        self._other_addons: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._tokens: dict[str, tuple[str, float, str | None]] = {}
        self._main_window: deque[float] = deque()
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._counter = 0
        self.archives: dict[str, FakeArchive] = {}
        self._download_tokens: dict[str, str] = {}

    # -- seeding -----------------------------------------------------------------------------------------

    def add_app(self, name: str, region: str = DEFAULT_REGION) -> None:
        with self._lock:
            self._apps.setdefault((region, name), [])

    def add_database(
        self,
        app: str,
        addon_id: str,
        *,
        provider: str = "postgresql",
        region: str = DEFAULT_REGION,
        resource_id: str | None = None,
        periodic_backups_enabled: bool = True,
        scheduled_hours: list[int] | None = None,
        provider_prefix: bool = False,
        created_at: datetime | None = None,
        maintenance_window: dict[str, int] | None = None,
    ) -> FakeAddon:
        """A database addon with its database object (schedule defaults to 01:00 UTC; created 90 days ago)."""
        with self._lock:
            created = created_at or datetime.fromtimestamp(self.clock(), UTC) - timedelta(days=90)
            self.add_app(app, region)
            self._counter += 1
            resource = resource_id or f"{app}-{self._counter}"
            database = {
                "id": f"db{self._counter:022x}",
                "resource_id": resource,
                "app_name": app,
                "plan": f"{provider}-starter-512",
                "status": "running",
                "type_name": provider,
                "readable_version": "1.0.0",
                "periodic_backups_enabled": periodic_backups_enabled,
                "periodic_backups_scheduled_at": [1] if scheduled_hours is None else scheduled_hours,
                "created_at": iso(created),
            }
            if maintenance_window is not None:
                database["maintenance_window"] = maintenance_window
            addon = FakeAddon(
                region,
                app,
                addon_id,
                f"scalingo-{provider}" if provider_prefix else provider,
                resource,
                database,
            )
            self._addons[addon_id] = addon
            self._apps[(region, app)].append(addon_id)
            return addon

    def add_other_addon(self, app: str, addon_id: str, provider: str, region: str = DEFAULT_REGION) -> None:
        """A non-database addon (e.g. an SMTP or log drain) that discovery must skip."""
        with self._lock:
            self.add_app(app, region)
            self._other_addons.setdefault((region, app), []).append(
                {
                    "id": addon_id,
                    "app_id": app,
                    "resource_id": f"{app}-{provider}",
                    "status": "running",
                    "plan": {"name": f"{provider}-free"},
                    "addon_provider": {"id": provider, "name": provider},
                }
            )

    def add_backup(
        self,
        addon_id: str,
        created_at: datetime,
        status: str = "done",
        *,
        size: int | None = 50_000_000,
        backup_id: str | None = None,
        method: str | None = "periodic",
        started_at: datetime | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """A backup of a seeded database; returns the raw dict so tests can change it later."""
        with self._lock:
            addon = self._addons[addon_id]
            self._counter += 1
            backup: dict[str, Any] = {
                "id": backup_id or f"bk{self._counter:022x}",
                "created_at": iso(created_at),
                "started_at": iso(started_at or created_at) if status != "scheduled" else None,
                "name": f"{created_at.astimezone(UTC):%Y%m%d%H%M%S}_{addon.resource_id}",
                "size": size,
                "status": status,
                "database_id": addon.database["id"],
            }
            if method is not None:
                backup["method"] = method
            backup.update(extra)
            addon.backups.append(backup)
            return backup

    def add_raw_backup(self, addon_id: str, entry: Any) -> Any:
        """Put `entry` as is in a database's backups list (any JSON value: a malformed entry, a duplicate)."""
        with self._lock:
            self._addons[addon_id].backups.append(entry)
            return entry

    def remove_database(self, addon_id: str) -> None:
        """Delete a database addon (its app stays): Scalingo answers 404 for it from now on."""
        with self._lock:
            addon = self._addons.pop(addon_id)
            self._apps[(addon.region, addon.app)].remove(addon_id)

    def remove_app(self, name: str, region: str = DEFAULT_REGION) -> None:
        """Delete an app with its addons."""
        with self._lock:
            for addon_id in self._apps.pop((region, name), []):
                self._addons.pop(addon_id, None)
            self._other_addons.pop((region, name), None)

    def rename_app(self, old: str, new: str, region: str = DEFAULT_REGION) -> None:
        """`scalingo rename`: the app and its addons keep their ids under a new name (the old name answers 404)."""
        with self._lock:
            addon_ids = self._apps.pop((region, old))
            self._apps[(region, new)] = addon_ids
            for addon_id in addon_ids:
                self._addons[addon_id].app = new
                self._addons[addon_id].database["app_name"] = new
            if (region, old) in self._other_addons:
                self._other_addons[(region, new)] = self._other_addons.pop((region, old))

    def set_archive(self, backup_id: str, body: bytes | Callable[[], Iterable[bytes]], **options: Any) -> FakeArchive:
        """Serve `body` at the backup's download link (options: see FakeArchive)."""
        with self._lock:
            archive = FakeArchive(body, **options)
            self.archives[backup_id] = archive
            return archive

    # -- point-in-time recovery --------------------------------------------------------------------------

    def set_recovery_window(self, addon_id: str, earliest: datetime | None, latest: datetime) -> None:
        """Give a seeded database a PITR recovery window (`earliest` None: that field is left out, as Go's
        omitempty does); a malformed one is a `fail` on "/pitr/recovery_window" with status 200."""
        with self._lock:
            window = {"latest_recoverable_at": iso(latest)}
            if earliest is not None:
                window = {"earliest_recoverable_at": iso(earliest), **window}
            self._addons[addon_id].recovery_window = window

    def clear_recovery_window(self, addon_id: str) -> None:
        """No PITR for this database any more: its recovery window answers 404 (the default)."""
        with self._lock:
            self._addons[addon_id].recovery_window = None

    def database(self, addon_id: str) -> dict[str, Any]:
        """The raw database object of an addon, to change in place."""
        return self._addons[addon_id].database

    def backups(self, addon_id: str) -> list[Any]:
        """The raw backup list of an addon, to change in place."""
        return self._addons[addon_id].backups

    def fail(
        self,
        match: str,
        status: int,
        body: str | None = None,
        *,
        times: int = 1,
        retry_after: str | None = None,
        method: str | None = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        drip_seconds: float = 0.0,
        size: int | None = None,
        announce_length: bool = True,
    ) -> Fault:
        """Answer `status` (with `body`) to the next `times` requests whose path contains `match` (the other
        options: see Fault)."""
        fault = Fault(
            match,
            status,
            body,
            times,
            retry_after,
            method,
            content_type,
            headers,
            drip_seconds,
            size,
            announce_length,
        )
        with self._lock:
            self.faults.append(fault)
        return fault

    def expire_tokens(self, kind: str | None = None) -> None:
        """Make every issued token (or every one of `kind`: "bearer" or "addon") expired server-side."""
        with self._lock:
            for token, (token_kind, _, scope) in list(self._tokens.items()):
                if kind is None or token_kind == kind:
                    self._tokens[token] = (token_kind, 0.0, scope)

    def count(self, api: str | None = None, path_contains: str = "", method: str | None = None) -> int:
        """How many recorded requests match."""
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (api is None or r.api == api) and path_contains in r.path and (method is None or r.method == method)
            )

    def consume_main_quota(self, count: int) -> None:
        """Spend `count` of the main API's quota now, as another process using the same token would."""
        with self._lock:
            now = time.monotonic()
            self._main_window.extend([now] * count)

    def reset_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- serving -----------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake Scalingo is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def region_url(self) -> str:
        """A base URL template for the client settings: ``http://127.0.0.1:PORT/{region}``."""
        return f"{self.url}/{{region}}"

    def start(self) -> FakeScalingo:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-scalingo", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeScalingo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- archive downloads ------------------------------------------------------------------------------

    def serve_download(self, handler: BaseHTTPRequestHandler) -> bool:
        """Answer a download link (token in the query, no header) or its redirect target; False: not one."""
        route = _download_route(handler.path)
        if route is None:
            return False
        region, kind, backup_id, query = route
        with self._lock:
            token = query.removeprefix("token=") if kind == "download" else ""
            archive = self.archives.get(backup_id)
            allowed = self._download_tokens.get(token) == backup_id if kind == "download" else "sig=" in query
            status = 403 if not allowed else 404 if archive is None else archive.status
            redirect = archive is not None and archive.redirect and kind == "download" and status == 200
            if redirect:
                status = 302
            path = urlsplit(handler.path).path  # never the query: it holds the token
            self.requests.append(RecordedRequest("GET", path, region, "download", status, time.monotonic()))
        if status != 200 or archive is None:
            body = json.dumps({"error": "forbidden" if status == 403 else "not found"}).encode()
            handler.send_response(status)
            if redirect:
                handler.send_header(
                    "Location", f"{self.url}/{region}/archive-store/{backup_id}?sig={secrets.token_hex(8)}"
                )
                body = b""
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            return True
        self._stream(handler, archive)
        return True

    def _stream(self, handler: BaseHTTPRequestHandler, archive: FakeArchive) -> None:
        length = archive.content_length
        if length is None and isinstance(archive.body, bytes):
            length = len(archive.body)
        handler.send_response(200)
        handler.send_header("Content-Type", "application/gzip")
        if length is not None:
            handler.send_header("Content-Length", str(length))
        else:
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.end_headers()
        sent = 0
        try:
            for chunk in archive.chunks():
                if archive.stall_after is not None and sent + len(chunk) > archive.stall_after:
                    handler.wfile.write(chunk[: archive.stall_after - sent])
                    handler.wfile.flush()
                    time.sleep(archive.stall_seconds)
                    break
                handler.wfile.write(chunk)
                sent += len(chunk)
                if archive.chunk_delay:
                    handler.wfile.flush()
                    time.sleep(archive.chunk_delay)
        except OSError:
            pass  # the client gave up: part of what the fake is for
        handler.close_connection = True

    # -- behaviour ---------------------------------------------------------------------------------------

    def _issue(self, kind: str, ttl: float, scope: str | None) -> str:
        now = self.clock()
        token = make_jwt({"exp": int(now + ttl), "iat": int(now), "sub": kind, "jti": secrets.token_hex(8)})
        self._tokens[token] = (kind, now + ttl, scope)
        return token

    def _valid(self, header: str | None, kind: str, scope: str | None = None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        entry = self._tokens.get(header[len("Bearer ") :])
        if entry is None:
            return False
        token_kind, expiry, token_scope = entry
        return token_kind == kind and expiry > self.clock() and (scope is None or token_scope == scope)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and fault.match in path and (fault.method in (None, method)):
                fault.times -= 1
                return fault
        return None

    def _rate_limited(self) -> bool:
        if self.main_rate_limit is None:
            return False
        now = time.monotonic()
        while self._main_window and now - self._main_window[0] >= self.main_rate_window:
            self._main_window.popleft()
        if len(self._main_window) >= self.main_rate_limit:
            return True
        self._main_window.append(now)
        return False

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str]
    ) -> tuple[int, str | StreamedBody, dict[str, str]]:
        """Route one request; returns status, body (text, or chunks to stream) and extra headers."""
        path = urlsplit(raw_path).path
        segments = [s for s in path.split("/") if s]
        region = DEFAULT_REGION
        if segments and segments[0] not in ("v1", "api"):
            region = segments.pop(0)
        path = "/" + "/".join(segments)
        api = "auth" if path.startswith("/v1/tokens") else "db" if path.startswith("/api/") else "main"
        with self._lock:
            status, body, extra = self._route(method, path, region, api, headers)
            self.requests.append(RecordedRequest(method, path, region, api, status, time.monotonic()))
        return status, body, extra

    def _route(
        self, method: str, path: str, region: str, api: str, headers: dict[str, str]
    ) -> tuple[int, str | StreamedBody, dict[str, str]]:
        if api == "main" and self._rate_limited():
            extra = {"Retry-After": self.rate_limit_retry_after} if self.rate_limit_retry_after else {}
            return 429, "Retry later", {"Content-Type": "text/plain", **extra}
        fault = self._take_fault(method, path)
        if fault is not None:
            extra = {"Content-Type": fault.content_type}
            if fault.retry_after is not None:
                extra["Retry-After"] = fault.retry_after
            extra.update(fault.headers or {})
            return fault.status, _fault_body(fault), extra
        auth = headers.get("authorization")
        segments = path.strip("/").split("/")
        if api == "auth":
            return self._exchange(method, path, auth)
        if api == "main":
            if not self._valid(auth, "bearer"):
                return _json(401, {"error": "You are not authorized to do this operation"})
            return self._main(method, segments, region)
        return self._db(method, segments, auth, region)

    def _exchange(self, method: str, path: str, auth: str | None) -> tuple[int, str, dict[str, str]]:
        if method != "POST" or path != "/v1/tokens/exchange":
            return _json(404, {"resource": "route", "error": "not found"})
        expected = "Basic " + base64.b64encode(f":{self.api_token}".encode()).decode()
        if auth != expected:
            return _json(401, {"error": "invalid token"})
        return _json(200, {"token": self._issue("bearer", self.bearer_ttl, None)})

    def _main(self, method: str, seg: list[str], region: str) -> tuple[int, str, dict[str, str]]:
        if method == "GET" and seg == ["v1", "apps"]:
            apps = sorted(name for (r, name) in self._apps if r == region)
            return _json(200, {"apps": [{"id": f"app-{n}", "name": n} for n in apps]})
        if len(seg) >= 4 and seg[:2] == ["v1", "apps"] and seg[3] == "addons":
            app = seg[2]
            if (region, app) not in self._apps:
                return _json(404, {"resource": "app", "error": "not found"})
            if method == "GET" and len(seg) == 4:
                addons = [self._addon_json(self._addons[a]) for a in self._apps[(region, app)]]
                return _json(200, {"addons": addons + self._other_addons.get((region, app), [])})
            if method == "POST" and len(seg) == 6 and seg[5] == "token":
                addon = self._addons.get(seg[4])
                if addon is None or addon.app != app or addon.region != region:
                    others = self._other_addons.get((region, app), [])
                    if any(o["id"] == seg[4] for o in others):
                        return _json(400, {"error": "this addon has no database token"})
                    return _json(404, {"resource": "addon", "error": "not found"})
                body = self._addon_json(addon)
                body["token"] = self._issue("addon", self.addon_token_ttl, addon.id)
                return _json(200, {"addon": body})
        return _json(404, {"resource": "route", "error": "not found"})

    def _addon_json(self, addon: FakeAddon) -> dict[str, Any]:
        return {
            "id": addon.id,
            "app_id": f"app-{addon.app}",
            "resource_id": addon.resource_id,
            "status": "running",
            "plan": {"name": addon.database["plan"]},
            "addon_provider": {"id": addon.provider, "name": addon.provider.title()},
        }

    def _db(self, method: str, seg: list[str], auth: str | None, region: str) -> tuple[int, str, dict[str, str]]:
        if method != "GET" or len(seg) < 3 or seg[:2] != ["api", "databases"]:
            return _json(404, {"resource": "route", "error": "not found"})
        addon = self._addons.get(seg[2])
        if not self._valid(auth, "addon", seg[2]):
            return _json(401, {"error": "invalid or expired token"})
        if addon is None or addon.region != region:
            return _json(404, {"resource": "database", "error": "not found"})
        rest = seg[3:]
        if rest == []:
            return _json(200, {"database": addon.database})
        if rest == ["backups"]:
            # Newest first, as Scalingo appears to list them.
            ordered = sorted(addon.backups, key=_created_at, reverse=True)
            return _json(200, {"database_backups": ordered})
        if rest == ["pitr", "recovery_window"]:
            if addon.recovery_window is None:
                return _json(404, {"resource": "recovery_window", "error": "not found"})
            return _json(200, {"recovery_window": addon.recovery_window})
        if len(rest) == 3 and rest[0] == "backups" and rest[2] == "archive":
            if not any(isinstance(b, dict) and b.get("id") == rest[1] for b in addon.backups):
                return _json(404, {"resource": "backup", "error": "not found"})
            base = self.link_base or f"{self.url}/{region}"
            token = "dl-" + secrets.token_hex(self.link_token_chars)[: self.link_token_chars - 3]
            self._download_tokens[token] = rest[1]
            link = f"{base}/api/databases/{addon.id}/backups/{rest[1]}/download?token={token}"
            return _json(200, {"download_url": link})
        return _json(404, {"resource": "route", "error": "not found"})


def _download_route(raw_path: str) -> tuple[str, str, str, str] | None:
    """(region, kind, backup id, query) of a download or object-store path, or None."""
    parts = urlsplit(raw_path)
    seg = [s for s in parts.path.split("/") if s]
    region = DEFAULT_REGION
    if seg and seg[0] not in ("api", "archive-store"):
        region = seg.pop(0)
    if len(seg) == 6 and seg[:2] == ["api", "databases"] and seg[3] == "backups" and seg[5] == "download":
        return region, "download", seg[4], parts.query
    if len(seg) == 2 and seg[0] == "archive-store":
        return region, "store", seg[1], parts.query
    return None


def _json(status: int, body: Any) -> tuple[int, str, dict[str, str]]:
    return status, json.dumps(body), {"Content-Type": "application/json"}


def _created_at(entry: Any) -> str:
    """The sort key of a backup entry, whatever its shape."""
    return str(entry.get("created_at")) if isinstance(entry, dict) else ""


def _fault_body(fault: Fault) -> str | StreamedBody:
    if fault.size is not None:
        chunks, length = generated_backups(fault.size)
        return StreamedBody(chunks, length if fault.announce_length else None, fault.drip_seconds)
    body = fault.body if fault.body is not None else json.dumps({"error": "fake fault"})
    if fault.drip_seconds:
        data = body.encode()
        return StreamedBody(lambda: (data[i : i + 1] for i in range(len(data))), len(data), fault.drip_seconds)
    return body


def generated_backups(size: int, batch: int = 1000) -> tuple[Callable[[], Iterable[bytes]], int]:
    """A valid backups list of about `size` bytes (at least one entry), as chunks made while they are sent,
    and its exact length."""
    entry = json.dumps(
        {
            "id": "bk" + "0" * 22,
            "created_at": "2026-01-01T01:00:00.000+00:00",
            "started_at": "2026-01-01T01:00:00.000+00:00",
            "name": "20260101010000_generated",
            "size": 50_000_000,
            "status": "done",
            "database_id": "db" + "0" * 22,
            "method": "periodic",
        }
    ).encode()
    head, tail = b'{"database_backups": [', b"]}"
    count = max(1, (size - len(head) - len(tail) + 1) // (len(entry) + 1))
    length = len(head) + count * (len(entry) + 1) - 1 + len(tail)

    def chunks() -> Iterator[bytes]:
        yield head
        sent = 0
        while sent < count:
            n = min(batch, count - sent)
            yield (b"," if sent else b"") + b",".join([entry] * n)
            sent += n
        yield tail

    return chunks, length


class _QuietServer(ThreadingHTTPServer):
    """A threading server that does not print a client hanging up (timeouts in tests do that)."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore: a client that gave up is part of what the fake is for."""


class _Handler(BaseHTTPRequestHandler):
    owner: FakeScalingo
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes: without TCP_NODELAY, Nagle's algorithm and the client's delayed ACK
    # hold every answer back about 40 ms.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the fake records requests itself."""

    def _serve(self) -> None:
        if self.command == "GET" and self.owner.serve_download(self):
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.owner.latency:
            time.sleep(self.owner.latency)
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, body, extra = self.owner.handle(self.command, self.path, headers)
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        if isinstance(body, StreamedBody):
            self._send_streamed(body)
            return
        data = body.encode()
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_streamed(self, body: StreamedBody) -> None:
        if body.length is not None:
            self.send_header("Content-Length", str(body.length))
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True  # a client that gave up halfway leaves the connection unusable
        try:
            for chunk in body.chunks():
                self.wfile.write(chunk)
                if body.delay:
                    self.wfile.flush()
                    time.sleep(body.delay)
        except OSError:
            pass  # the client gave up: part of what the fake is for

    do_GET = _serve
    do_POST = _serve
