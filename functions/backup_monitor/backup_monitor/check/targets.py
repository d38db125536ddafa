"""Stage `targets`: which databases this check looks at (configured, or discovered and cached), less
EXCLUDE_APPS, and which discovered databases are retired.

Discovery is merged region by region into the cached list, never replacing it wholesale: a database one
answer leaves out stays watched; it is retired only when its region's discovery leaves it out twice in a row,
at least RETIRE_AFTER apart (then "no longer watched" is said once). A region whose discovery fails keeps its
cached databases. A database is identified by its addon (`region/addon_id`): one listed under another app
name is the same database, renamed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from backup_monitor.check.model import Clients, Summary
from backup_monitor.config import Settings, Target
from backup_monitor.records import Record
from backup_monitor.scalingo.errors import ScalingoError
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
    return DISCOVERY_KEY_PREFIX + ",".join(settings.regions)


@dataclass(slots=True)
class Targets:
    """What a check looks at: `watched` (read from Scalingo) and `retired` (said once to be no longer watched,
    their incidents closed; not read)."""

    watched: list[Target] = field(default_factory=list)
    retired: list[Target] = field(default_factory=list)
    record: Record | None = None  # the discovery record as cached after this stage (None: MONITORED_DATABASES)
    failed: dict[str, ScalingoError] = field(default_factory=dict)  # regions whose discovery failed now


def resolve_targets(
    settings: Settings, clients: Clients, now: datetime, *, summary: Summary | None = None, save: bool = True
) -> Targets:
    """The configured databases, or every database the token can see (discovery cached in state, refreshed
    every DISCOVERY_EVERY_HOURS). Apps matched by EXCLUDE_APPS are left out (their addons are not even listed).
    `save` false (a dry run): what discovery found is not cached."""
    if settings.monitored:
        return Targets(list(settings.monitored))
    cached = load_discovery(settings, clients)
    max_age = timedelta(hours=settings.discovery_every_hours)
    if cached and cached.database_fetched_at and now - cached.database_fetched_at < max_age:
        return _kept(settings, cached, summary)
    return rediscover(settings, clients, now, settings.regions, cached, summary=summary, save=save)


def load_discovery(settings: Settings, clients: Clients) -> Record | None:
    key = discovery_key(settings)
    broken: dict[str, str] = {}
    cached = load_record(clients.store, key, unreadable=broken)  # the head, then its parts (state/chunks.py)
    if broken:  # rediscovered at every check until it reads again (it is not overwritten)
        logger.warning("the cached discovery cannot be read, discovering again", extra={"error": broken[key]})
    return cached


def rediscover(
    settings: Settings,
    clients: Clients,
    now: datetime,
    regions: Sequence[str],
    cached: Record | None,
    *,
    summary: Summary | None = None,
    save: bool = True,
) -> Targets:
    """Discover `regions` again and merge them into the cached list (the other regions are kept as cached).

    A region whose discovery fails keeps its cached databases; ScalingoError when every region failed and
    nothing is cached (OutOfTimeError: no time was left)."""
    key = discovery_key(settings)
    record = cached or Record(key=key)
    errors: dict[str, ScalingoError] = {}
    retired: list[Target] = []
    discovered, unlisted = dict(record.discovered), dict(record.unlisted)
    excluded: list[str] = []
    for region in regions:
        region_excluded: list[str] = []
        try:
            found = clients.scalingo.discover([region], exclude=settings.excluded, excluded=region_excluded)
        except ScalingoError as exc:
            logger.warning(
                "discovery failed, the region's cached list is kept", extra={"region": region, "error": str(exc)}
            )
            errors[region] = exc
            continue
        excluded.extend(region_excluded)
        retired.extend(_merge_region(settings, region, found, discovered, unlisted, now))
    if errors and len(errors) == len(regions) and not record.discovered:
        raise next(iter(errors.values()))
    full = not errors and set(regions) >= set(settings.regions)
    if not full:  # the apps excluded in the regions not discovered now are still excluded
        excluded.extend(record.excluded_apps)
    listed = {target_from_name(name).key for name in discovered}
    retiring = [n for n in record.retiring if target_from_name(n).key not in listed]  # listed again: watched
    record = replace(
        record,
        discovered=discovered,
        unlisted=unlisted,
        retiring=tuple(sorted({*retiring, *(t.name for t in retired)})),
        excluded_apps=tuple(sorted(set(excluded))),
        database_fetched_at=now if full else record.database_fetched_at,
    )
    if save:
        record = _save(clients, record, now)
    logger.info("discovered databases", extra={"count": len(discovered), "regions": list(regions)})
    return replace(_kept(settings, record, summary), failed=errors)


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


def _merge_region(
    settings: Settings,
    region: str,
    found: Iterable[DiscoveredDatabase],
    discovered: dict[str, str],
    unlisted: dict[str, datetime],
    now: datetime,
) -> list[Target]:
    """Fold one region's discovery answer into `discovered` (name -> provider) and `unlisted` (key -> first
    miss); return the databases it retires."""
    listed = {Target(d.region, d.app, d.addon_id): d.provider for d in found}
    listed_keys = {t.key for t in listed}
    retired: list[Target] = []
    for name in [n for n in discovered if n.startswith(f"{region}/")]:
        target = target_from_name(name)
        if target.key in listed_keys:
            del discovered[name]  # listed again below, under its current app name (a rename)
            continue
        if settings.excluded(target.app):  # excluded since: dropped without a word
            del discovered[name]
            unlisted.pop(target.key, None)
            continue
        first_miss = unlisted.setdefault(target.key, now)
        if now - first_miss >= RETIRE_AFTER:
            del discovered[name]
            del unlisted[target.key]
            retired.append(target)
    for target, provider in listed.items():
        discovered[target.name] = provider
        unlisted.pop(target.key, None)
    return retired


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
