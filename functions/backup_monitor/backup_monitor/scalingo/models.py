"""Typed views of Scalingo payloads, parsed strictly where it matters and tolerantly elsewhere."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from backup_monitor.scalingo.errors import PayloadError

KNOWN_STATUSES = frozenset({"scheduled", "pending", "running", "done", "error", "cancelling", "cancelled"})
IN_PROGRESS_STATUSES = frozenset({"scheduled", "pending", "running", "cancelling"})
DATABASE_PROVIDERS = frozenset({"postgresql", "mysql", "mongodb", "redis", "influxdb", "elasticsearch", "opensearch"})


@dataclass(frozen=True, slots=True)
class Backup:
    """One backup as the database API lists it; times are timezone-aware UTC."""

    id: str
    created_at: datetime
    status: str
    started_at: datetime | None = None
    name: str = ""
    size: int | None = None
    method: str | None = None

    @property
    def in_progress(self) -> bool:
        return self.status in IN_PROGRESS_STATUSES

    @property
    def done(self) -> bool:
        return self.status == "done"

    @property
    def known_status(self) -> bool:
        return self.status in KNOWN_STATUSES


# At most this many reasons are kept in a BackupListing (the counts cover every entry).
MAX_LISTED_PROBLEMS = 5


@dataclass(frozen=True, slots=True)
class BackupListing:
    """A database's backups list as read: the usable backups (newest first, one per id), how many entries
    could not be read (`skipped`) or repeated an id already seen (`duplicates`), and short reasons for the
    first few of those (`problems`: index and field, never the entry itself)."""

    backups: tuple[Backup, ...]
    skipped: int = 0
    duplicates: int = 0
    problems: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """Whether every entry of the answer was read and kept."""
        return not self.skipped and not self.duplicates


@dataclass(frozen=True, slots=True)
class Database:
    """What the monitor needs to know about one database."""

    id: str
    resource_id: str
    type_name: str
    periodic_backups_enabled: bool
    scheduled_hours: tuple[int, ...]
    plan: str = ""
    status: str = ""
    created_at: datetime | None = None
    maintenance: MaintenanceWindow | None = None

    def to_json(self) -> dict[str, Any]:
        """A plain dict for the state record's cache."""
        data: dict[str, Any] = {
            "id": self.id,
            "resource_id": self.resource_id,
            "type_name": self.type_name,
            "periodic_backups_enabled": self.periodic_backups_enabled,
            "scheduled_hours": list(self.scheduled_hours),
            "plan": self.plan,
            "status": self.status,
        }
        if self.created_at is not None:
            data["created_at"] = self.created_at.isoformat()
        if self.maintenance is not None:
            data["maintenance"] = list(self.maintenance)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Database:
        """The inverse of to_json."""
        return cls(
            id=str(data["id"]),
            resource_id=str(data["resource_id"]),
            type_name=str(data["type_name"]),
            periodic_backups_enabled=bool(data["periodic_backups_enabled"]),
            scheduled_hours=tuple(int(h) for h in data["scheduled_hours"]),
            plan=str(data.get("plan", "")),
            status=str(data.get("status", "")),
            created_at=_sane_time(data.get("created_at")),
            maintenance=MaintenanceWindow.from_list(data.get("maintenance")),
        )


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """A weekly maintenance window (UTC); `weekday` counts from Sunday = 0, as Go's time.Weekday does."""

    weekday: int
    start_hour: int
    duration_hours: int

    def __iter__(self) -> Iterator[int]:
        return iter((self.weekday, self.start_hour, self.duration_hours))

    @classmethod
    def from_list(cls, raw: Any) -> MaintenanceWindow | None:
        if not isinstance(raw, list) or len(raw) != 3 or not all(isinstance(x, int) for x in raw):
            return None
        return cls(raw[0], raw[1], raw[2])

    def covers(self, moment: datetime) -> bool:
        """Whether `moment` falls inside one of the window's weekly occurrences."""
        moment = moment.astimezone(UTC)
        go_weekday = (moment.weekday() + 1) % 7  # Python: Monday = 0; Go: Sunday = 0
        days_back = (go_weekday - self.weekday) % 7
        for extra_weeks in (0, 1):
            day = moment - timedelta(days=days_back + 7 * extra_weeks)
            start = day.replace(hour=self.start_hour, minute=0, second=0, microsecond=0)
            if start <= moment < start + timedelta(hours=self.duration_hours):
                return True
        return False

    def describe(self) -> str:
        names = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
        return f"{names[self.weekday % 7]}s {self.start_hour:02d}:00 UTC for {self.duration_hours} h"


@dataclass(frozen=True, slots=True)
class RecoveryWindow:
    """A PostgreSQL database's point-in-time recovery window (UTC): the times it can be restored to.

    `earliest` is None when Scalingo did not give a readable one; `latest` is the newest restore point."""

    earliest: datetime | None
    latest: datetime


@dataclass(frozen=True, slots=True)
class DiscoveredDatabase:
    """A database addon found by discovery."""

    region: str
    app: str
    addon_id: str
    resource_id: str
    provider: str


def _field(obj: Mapping[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if name not in obj or obj[name] is None:
        raise PayloadError(f"{where}: field {name!r} is missing")
    value = obj[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise PayloadError(f"{where}: field {name!r} has the wrong type ({type(value).__name__})")
    return value


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PayloadError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise PayloadError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def parse_time(value: Any, where: str) -> datetime:
    """An ISO 8601 timestamp with offset, as UTC; naive times are taken as UTC."""
    if not isinstance(value, str):
        raise PayloadError(f"{where}: expected an ISO 8601 time, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: year 1 with a positive offset has no UTC equivalent
        raise PayloadError(f"{where}: {value[:40]!r} is not an ISO 8601 time") from None


# Go's zero time (0001-01-01) and other placeholders: no real backup or database predates this.
EARLIEST_PLAUSIBLE = datetime(2000, 1, 1, tzinfo=UTC)


def _sane_time(value: Any, where: str = "time") -> datetime | None:
    """An optional time: absent, unreadable or implausibly old (Go's zero time) is None."""
    if value in (None, ""):
        return None
    try:
        parsed = parse_time(value, where)
    except PayloadError:
        return None  # optional: a bad value is as good as absent
    return parsed if parsed >= EARLIEST_PLAUSIBLE else None


def _optional_time(obj: Mapping[str, Any], name: str, where: str) -> datetime | None:
    return _sane_time(obj.get(name), f"{where}.{name}")


def parse_backup(item: Any, where: str) -> Backup:
    """One backup; `id`, `created_at` and `status` are required, the rest tolerated when absent."""
    obj = _object(item, where)
    size = obj.get("size")
    method = obj.get("method")
    name = obj.get("name")
    return Backup(
        id=_field(obj, "id", str, where),
        created_at=parse_time(_field(obj, "created_at", str, where), f"{where}.created_at"),
        status=_field(obj, "status", str, where).strip().lower(),
        started_at=_optional_time(obj, "started_at", where),
        name=name if isinstance(name, str) else "",
        size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
        method=method if isinstance(method, str) else None,
    )


def parse_backup_listing(payload: Any) -> BackupListing:
    """The `database_backups` list, sorted newest first (the API's order is not documented).

    One entry that cannot be read (not an object, a missing or mistyped `id`, `created_at` or `status`) is
    skipped and counted, the rest kept; a repeated id counts once (the first entry in the answer is kept).
    A body that is not an object, or a `database_backups` that is not a list, is a PayloadError."""
    body = _object(payload, "backups response")
    items = _list(_field(body, "database_backups", list, "backups response"), "database_backups")
    backups: list[Backup] = []
    seen: set[str] = set()
    skipped = duplicates = 0
    problems: list[str] = []
    for index, item in enumerate(items):
        where = f"database_backups[{index}]"
        try:
            backup = parse_backup(item, where)
        except PayloadError as exc:
            skipped += 1
            problem = exc.message
        else:
            if backup.id not in seen:
                seen.add(backup.id)
                backups.append(backup)
                continue
            duplicates += 1
            problem = f"{where}: duplicate id, the first entry with it is kept"
        if len(problems) < MAX_LISTED_PROBLEMS:
            problems.append(problem)
    backups.sort(key=lambda backup: (backup.created_at, backup.id), reverse=True)
    return BackupListing(tuple(backups), skipped, duplicates, tuple(problems))


def usable_backups(listing: BackupListing) -> list[Backup]:
    """The backups of a listing; a PayloadError when it had entries and not one of them could be read."""
    if listing.skipped and not listing.backups:
        more = f" (and {listing.skipped - 1} more)" if listing.skipped > 1 else ""
        first = listing.problems[0] if listing.problems else "unreadable entries"
        raise PayloadError(f"no backup entry could be read: {first}{more}")
    return list(listing.backups)


def parse_backups(payload: Any) -> list[Backup]:
    """The readable backups, newest first: `parse_backup_listing` without the counts (see `usable_backups`)."""
    return usable_backups(parse_backup_listing(payload))


def parse_database(payload: Any) -> Database:
    """The `database` object: id, type and the periodic backup schedule."""
    body = _object(payload, "database response")
    obj = _object(_field(body, "database", Mapping, "database response"), "database")
    enabled = obj.get("periodic_backups_enabled")
    if not isinstance(enabled, bool):
        raise PayloadError("database: field 'periodic_backups_enabled' is missing or not a boolean")
    hours_raw = obj.get("periodic_backups_scheduled_at") or []
    hours = _list(hours_raw, "database.periodic_backups_scheduled_at")
    for hour in hours:
        if not isinstance(hour, int) or isinstance(hour, bool) or not 0 <= hour <= 23:
            raise PayloadError("database.periodic_backups_scheduled_at: hours must be whole numbers 0-23")
    type_name = obj.get("type_name")
    window = obj.get("maintenance_window")
    maintenance = None
    if isinstance(window, Mapping):
        parts = [window.get(k) for k in ("weekday_utc", "starting_hour_utc", "duration_in_hour")]
        if all(isinstance(x, int) and not isinstance(x, bool) for x in parts):
            weekday, start, duration = (int(x) for x in parts)  # type: ignore[arg-type]
            if 0 <= weekday <= 6 and 0 <= start <= 23 and 0 < duration <= 168:
                maintenance = MaintenanceWindow(weekday, start, duration)
    return Database(
        id=_field(obj, "id", str, "database"),
        resource_id=str(obj.get("resource_id") or ""),
        type_name=type_name if isinstance(type_name, str) else "database",
        periodic_backups_enabled=enabled,
        scheduled_hours=tuple(sorted(set(hours))),
        plan=str(obj.get("plan") or ""),
        status=str(obj.get("status") or ""),
        created_at=_optional_time(obj, "created_at", "database"),
        maintenance=maintenance,
    )


# A restore point later than this past the monitor's clock is no reading (clock skew is seconds, not hours).
MAX_RECOVERY_POINT_AHEAD = timedelta(hours=1)


def parse_recovery_window(payload: Any, *, now: datetime | None = None) -> RecoveryWindow:
    """The `recovery_window` object; `latest_recoverable_at` is required, and must lie between
    EARLIEST_PLAUSIBLE and MAX_RECOVERY_POINT_AHEAD past `now` (default: the current time), else a PayloadError.

    `earliest_recoverable_at` is optional: absent, unreadable, implausible or after the latest one, it is None."""
    where = "recovery window response"
    body = _object(payload, where)
    obj = _object(_field(body, "recovery_window", Mapping, where), "recovery_window")
    raw_latest = _field(obj, "latest_recoverable_at", str, "recovery_window")
    latest = parse_time(raw_latest, "recovery_window.latest_recoverable_at")
    if latest < EARLIEST_PLAUSIBLE:  # Go's zero time: no restore point at all, not one from year 1
        raise PayloadError(f"recovery_window: latest_recoverable_at {latest.date().isoformat()} is implausibly old")
    ceiling = (now or datetime.now(UTC)) + MAX_RECOVERY_POINT_AHEAD
    if latest > ceiling:
        when = latest.isoformat(timespec="minutes")
        raise PayloadError(f"recovery_window: latest_recoverable_at {when} is in the future, past any clock skew")
    earliest = _optional_time(obj, "earliest_recoverable_at", "recovery_window")
    return RecoveryWindow(earliest if earliest is not None and earliest <= latest else None, latest)


def provider_name(addon: Mapping[str, Any]) -> str:
    """The addon provider id without any `scalingo-` prefix."""
    provider = addon.get("addon_provider")
    raw = provider.get("id") if isinstance(provider, Mapping) else provider
    name = raw if isinstance(raw, str) else ""
    return name.removeprefix("scalingo-").lower()


def parse_addons(payload: Any, region: str, app: str) -> list[DiscoveredDatabase]:
    """The database addons of one app; other addons are left out."""
    body = _object(payload, f"addons of {app}")
    items = _list(_field(body, "addons", list, f"addons of {app}"), f"addons of {app}")
    found = []
    for index, item in enumerate(items):
        where = f"addons of {app}[{index}]"
        addon = _object(item, where)
        provider = provider_name(addon)
        if provider not in DATABASE_PROVIDERS:
            continue
        found.append(
            DiscoveredDatabase(
                region=region,
                app=app,
                addon_id=_field(addon, "id", str, where),
                resource_id=str(addon.get("resource_id") or ""),
                provider=provider,
            )
        )
    return found


def parse_apps(payload: Any) -> list[str]:
    """The app names the token can see."""
    body = _object(payload, "apps response")
    items = _list(_field(body, "apps", list, "apps response"), "apps")
    return [_field(_object(app, f"apps[{i}]"), "name", str, f"apps[{i}]") for i, app in enumerate(items)]


def parse_token(payload: Any, where: str, path: tuple[str, ...] = ("token",)) -> str:
    """A token from a JSON body, found by path."""
    node: Any = payload
    for step in path[:-1]:
        node = _field(_object(node, where), step, Mapping, where)
    return str(_field(_object(node, where), path[-1], str, where))
