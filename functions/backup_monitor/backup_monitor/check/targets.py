"""Stage `targets`: which databases this check looks at (configured, or discovered and cached), less
EXCLUDE_APPS, and which discovered databases are retired.

Discovery is resumable: a pass of a region lists its apps, then each app's addons, as many per check as the
check's main-API quota leaves after the due reads (see pipeline), and carries on at the next check; what was
listed is watched at once, and the cached list is never replaced wholesale. A database a pass leaves out (its
app is gone, or no longer lists it) stays watched, marked with the time of the first miss; it is retired when a
pass ends with it still left out at least RETIRE_AFTER after that (then "no longer watched" is said once).
A region whose discovery fails keeps its
cached databases. A database is identified by its addon (`region/addon_id`): one listed under another app
name is the same database, renamed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from backup_monitor.check.model import Clients, Summary
from backup_monitor.config import Settings, Target
from backup_monitor.records import Record
from backup_monitor.scalingo.errors import NotFoundError, OutOfTimeError, ScalingoError
from backup_monitor.scalingo.models import DiscoveredDatabase
from backup_monitor.state.base import ConflictError, StateError
from backup_monitor.state.chunks import load_record, save_record

logger = logging.getLogger(__name__)

DISCOVERY_KEY_PREFIX = "__discovery__/"
# A database discovery leaves out is retired when a pass at least this long after the first miss still leaves
# it out (one short answer, or a 404 glitch, never retires anything).
RETIRE_AFTER = timedelta(hours=1)
GONE_REASON = (
    "discovery no longer lists it (twice in a row, at least an hour apart): its addon or its app was deleted, "
    "or the API token lost access to it"
)


def discovery_key(settings: Settings) -> str:
    """The discovery record of these regions, one per shard (see Settings.singleton_key)."""
    return settings.singleton_key(DISCOVERY_KEY_PREFIX, ",".join(settings.regions))


@dataclass(slots=True)
class Targets:
    """What a check looks at: `watched` (read from Scalingo) and `retired` (said once to be no longer watched,
    their incidents closed; not read)."""

    watched: list[Target] = field(default_factory=list)
    retired: list[Target] = field(default_factory=list)
    record: Record | None = None  # the discovery record as cached after this stage (None: MONITORED_DATABASES)
    failed: dict[str, ScalingoError] = field(default_factory=dict)  # regions whose discovery failed now
    listed: set[tuple[str, str]] = field(default_factory=set)  # apps (region, app) whose addons were listed now


def resolve_targets(
    settings: Settings,
    clients: Clients,
    now: datetime,
    *,
    summary: Summary | None = None,
    save: bool = True,
    allowance: int | None = None,
) -> Targets:
    """The configured databases, or every database the token can see: the cached list, with the discovery
    pass under way (or due: every DISCOVERY_EVERY_HOURS) carried on by at most `allowance` main-API requests
    (None: as far as the check's time allows). Apps matched by EXCLUDE_APPS are left out (their addons are not
    even listed). `save` false (a dry run): what discovery found is not cached."""
    found = cached_targets(settings, clients, summary=summary)
    if settings.monitored:
        return found
    return advance(settings, clients, now, found, allowance=allowance, summary=summary, save=save)


def cached_targets(settings: Settings, clients: Clients, *, summary: Summary | None = None) -> Targets:
    """The configured databases, or the discovered ones as cached (no request to Scalingo)."""
    if settings.monitored:
        return Targets(list(settings.monitored))
    cached = load_discovery(settings, clients)
    return _kept(settings, cached or Record(key=discovery_key(settings)), summary)


def load_discovery(settings: Settings, clients: Clients) -> Record | None:
    key = discovery_key(settings)
    broken: dict[str, str] = {}
    cached = load_record(clients.store, key, unreadable=broken)  # the head, then its parts (state/chunks.py)
    if broken:  # rediscovered at every check until it reads again (it is not overwritten)
        logger.warning("the cached discovery cannot be read, discovering again", extra={"error": broken[key]})
    return cached


def pass_due(settings: Settings, record: Record, region: str, now: datetime) -> bool:
    """Whether `region` has a discovery pass under way, or one is due."""
    if region in record.pass_started:
        return True
    completed = record.pass_completed.get(region) or record.database_fetched_at
    return completed is None or now - completed >= timedelta(hours=settings.discovery_every_hours)


def advance(
    settings: Settings,
    clients: Clients,
    now: datetime,
    found: Targets,
    *,
    allowance: int | None = None,
    until: float | None = None,
    regions: Sequence[str] | None = None,
    first: Iterable[tuple[str, str]] = (),
    summary: Summary | None = None,
    save: bool = True,
) -> Targets:
    """Carry discovery on by at most `allowance` main-API requests and until `until` (a `time.monotonic()`
    value; None for either: until the check's fetching time ends), and merge what it finds into the cached
    list. A pass of a region lists its apps, then each app's
    addons, across as many checks as it takes; the apps already listed are kept meanwhile.

    `regions` and `first` (a 404's evidence): those regions' app lists are read again now, and the `first`
    apps (region, app) and the apps not known yet (a rename) are listed before the rest of the pass.

    A region whose discovery fails keeps its cached databases (and its pass, to go on later); ScalingoError
    when nothing is cached and no region answered (OutOfTimeError: no time was left)."""
    record = found.record or Record(key=discovery_key(settings))
    walk = _Walk(settings, clients, now, record, allowance, until, set(first))
    forced = list(regions or ())
    for region in settings.regions if regions is None else forced:
        if region not in forced and not pass_due(settings, record, region, now):
            continue
        try:
            walk.region(region, refresh=region in forced)
        except OutOfTimeError as exc:  # progress so far is kept; the pass goes on at the next check
            walk.failed[region] = exc
        except ScalingoError as exc:
            logger.warning(
                "discovery failed, the region's cached list is kept", extra={"region": region, "error": str(exc)}
            )
            walk.failed[region] = exc
        if walk.spent():
            break
    result = walk.record()
    if walk.failed and not result.discovered and not walk.listed:
        raise next(iter(walk.failed.values()))
    if save and result != record:
        result = _save(clients, result, now)
    if walk.requests:
        logger.info(
            "discovery went on",
            extra={"requests": walk.requests, "count": len(result.discovered), "apps_left": len(result.pass_todo)},
        )
    kept = _kept(settings, result, summary)
    return replace(kept, retired=[*found.retired, *walk.retired], failed=walk.failed, listed=walk.listed)


class _Walk:
    """One check's share of discovery passes, folded into a copy of the discovery record."""

    def __init__(
        self,
        settings: Settings,
        clients: Clients,
        now: datetime,
        record: Record,
        allowance: int | None,
        until: float | None,
        first: set[tuple[str, str]],
    ) -> None:
        self.settings, self.clients, self.now, self.first = settings, clients, now, first
        self.allowance, self.until = allowance, until
        self.base = record
        self.discovered = dict(record.discovered)
        self.unlisted = dict(record.unlisted)
        self.first_listed = dict(record.first_listed)
        self.todo = list(record.pass_todo)
        self.started = dict(record.pass_started)
        self.completed = dict(record.pass_completed)
        self.excluded = set(record.excluded_apps)
        self.retiring = list(record.retiring)
        self.retired: list[Target] = []
        self.failed: dict[str, ScalingoError] = {}
        self.listed: set[tuple[str, str]] = set()  # apps (region, app) whose addons were listed now
        self.requests = 0
        self.fetched_at = record.database_fetched_at

    def spent(self) -> bool:
        if self.allowance is not None and self.requests >= self.allowance:
            return True
        return (self.until is not None and time.monotonic() >= self.until) or not self.clients.scalingo.has_time()

    def _names_of(self, region: str) -> list[str]:
        return [n for n in self.discovered if n.startswith(f"{region}/")]

    def region(self, region: str, *, refresh: bool) -> None:
        prefix = f"{region}/"
        todo = [entry[len(prefix) :] for entry in self.todo if entry.startswith(prefix)]
        under_way = region in self.started
        evidence = 0
        if not under_way or refresh:
            if self.spent():
                if refresh:  # asked for evidence, and no time to get it: the caller leaves it to the next check
                    raise OutOfTimeError(f"no time left to discover {region} again")
                return
            excluded: list[str] = []
            self.requests += 1
            apps = self.clients.scalingo.list_apps(region, exclude=self.settings.excluded, excluded=excluded)
            present = set(apps)
            self.excluded = (self.excluded - present) | set(excluded)
            known = {target_from_name(n).app for n in self._names_of(region)}
            for name in self._names_of(region):  # apps gone from the list: their databases are left out
                target = target_from_name(name)
                if target.app not in present:
                    self._miss(name, target)
            wanted = [app for app in apps if (region, app) in self.first]
            new = [app for app in apps if app not in known]
            rest = [app for app in todo if app in present] if under_way else [app for app in apps if app in known]
            todo = list(dict.fromkeys([*wanted, *new, *rest]))
            if (
                refresh
            ):  # the evidence a 404 asks for (its apps, and new ones: a rename) is listed whatever the allowance
                evidence = len(dict.fromkeys([*wanted, *new]))
            if not under_way:
                self.started[region] = self.now
        try:
            while todo and ((evidence > 0 and self.clients.scalingo.has_time()) or not self.spent()):
                app = todo[0]
                self.requests += 1
                evidence -= 1
                try:
                    found = self.clients.scalingo.list_addons(region, app)
                except NotFoundError:  # deleted since the app list was read: its databases are left out
                    found = []
                self._merge_app(region, app, found)
                self.listed.add((region, app))
                todo.pop(0)
        finally:
            self.todo = [e for e in self.todo if not e.startswith(prefix)] + [prefix + app for app in todo]
        if not todo:
            self._complete(region)

    def _merge_app(self, region: str, app: str, found: Iterable[DiscoveredDatabase]) -> None:
        listed = {Target(d.region, d.app, d.addon_id): d.provider for d in found}
        keys = {t.key for t in listed}
        for name in self._names_of(region):
            target = target_from_name(name)
            if target.key in keys:
                del self.discovered[name]  # listed again below, under its current app name (a rename)
            elif target.app == app:
                self._miss(name, target)
        for target, provider in listed.items():
            self.discovered[target.name] = provider
            self.unlisted.pop(target.key, None)
            self.first_listed.setdefault(target.key, self.now)

    def _miss(self, name: str, target: Target) -> None:
        """A pass leaves `target` out (its app is gone, or no longer lists it): pending until the pass ends."""
        if self.settings.excluded(target.app):  # excluded since: dropped without a word
            del self.discovered[name]
            self.unlisted.pop(target.key, None)
            self.first_listed.pop(target.key, None)
            return
        self.unlisted.setdefault(target.key, self.now)

    def _complete(self, region: str) -> None:
        """The region's pass is over: what it left out, first left out by an earlier pass at least RETIRE_AFTER
        ago, is retired (two passes in a row: one short answer never retires anything)."""
        started = self.started.get(region, self.now)
        for name in self._names_of(region):
            target = target_from_name(name)
            first_miss = self.unlisted.get(target.key)
            if first_miss is not None and first_miss < started and self.now - first_miss >= RETIRE_AFTER:
                del self.discovered[name]
                del self.unlisted[target.key]
                self.first_listed.pop(target.key, None)
                self.retired.append(target)
        self.started.pop(region, None)
        self.completed[region] = self.now
        if all(r in self.completed for r in self.settings.regions) and not self.started:
            self.fetched_at = self.now

    def record(self) -> Record:
        listed = {target_from_name(name).key for name in self.discovered}
        retiring = [n for n in self.retiring if target_from_name(n).key not in listed]  # listed again: watched
        return replace(
            self.base,
            discovered=self.discovered,
            unlisted=self.unlisted,
            first_listed=self.first_listed,
            pass_todo=tuple(self.todo),
            pass_started=self.started,
            pass_completed=self.completed,
            retiring=tuple(sorted({*retiring, *(t.name for t in self.retired)})),
            excluded_apps=tuple(sorted(self.excluded)),
            database_fetched_at=self.fetched_at,
        )


def _save(clients: Clients, record: Record, now: datetime) -> Record:
    try:
        return save_record(clients.store, record, now.timestamp())  # in chunks, far below the item-size limit
    except ConflictError:  # another check discovered at the same time: its list is as good
        logger.info("another check cached the discovery at the same time")
    except StateError as exc:
        logger.warning("could not cache the discovered databases", extra={"error": str(exc)})
    return record


def finish_retirements(settings: Settings, clients: Clients, now: datetime, done: Callable[[str], bool]) -> None:
    """Forget the retirements delivered in full (`done(key)`: its record says so), so no later check says
    them again; the others are handed to the next check."""
    record = load_discovery(settings, clients)
    if record is None or not record.retiring:
        return
    left = tuple(name for name in record.retiring if not done(target_from_name(name).key))
    if left != record.retiring:
        _save(clients, replace(record, retiring=left), now)


def _kept(settings: Settings, record: Record, summary: Summary | None) -> Targets:
    """The discovered targets EXCLUDE_APPS keeps (the patterns may have changed since the list was cached)."""
    targets = [target_from_name(k) for k in sorted(record.discovered)]
    kept = [t for t in targets if not settings.excluded(t.app)]
    if summary is not None:
        summary.excluded = len(set(record.excluded_apps)) + len({t.app for t in targets if settings.excluded(t.app)})
    return Targets(kept, [target_from_name(name) for name in record.retiring], record)


def target_from_name(name: str) -> Target:
    """The target of a discovery entry (`region/app/addon_id`)."""
    region, app, addon_id = name.split("/", 2)
    return Target(region, app, addon_id)


def named_in_settings(settings: Settings, target: Target) -> bool:
    return any(t.key == target.key for t in settings.monitored)
