"""Stage `targets`: which databases this check looks at (configured, or discovered and cached), less
EXCLUDE_APPS and the databases retired as deleted."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

from backup_monitor.check.model import Clients, Summary
from backup_monitor.config import Settings, Target
from backup_monitor.records import Record
from backup_monitor.scalingo.errors import ScalingoError
from backup_monitor.state.base import StateError

logger = logging.getLogger(__name__)

DISCOVERY_KEY_PREFIX = "__discovery__/"


def discovery_key(settings: Settings) -> str:
    return DISCOVERY_KEY_PREFIX + ",".join(settings.regions)


def resolve_targets(
    settings: Settings, clients: Clients, now: datetime, *, force: bool = False, summary: Summary | None = None
) -> list[Target]:
    """The configured databases, or every database the token can see (discovery cached in state).

    Apps matched by EXCLUDE_APPS are left out (their addons are not even listed); `force` ignores the cache.
    """
    if settings.monitored:
        return list(settings.monitored)
    key = discovery_key(settings)
    broken: dict[str, str] = {}
    cached = clients.store.load_many([key], unreadable=broken).get(key)
    if broken:  # rediscovered at every check until it reads again (it is not overwritten)
        logger.warning("the cached discovery cannot be read, discovering again", extra={"error": broken[key]})
    max_age = timedelta(hours=settings.discovery_every_hours)
    if not force and cached and cached.database_fetched_at and now - cached.database_fetched_at < max_age:
        return _kept(settings, cached.discovered, cached.excluded_apps, summary)
    excluded: list[str] = []
    try:
        found = clients.scalingo.discover(settings.regions, exclude=settings.excluded, excluded=excluded)
    except ScalingoError as exc:
        if cached and cached.discovered and not force:
            logger.warning("discovery failed, using the previous list", extra={"error": str(exc)})
            return _kept(settings, cached.discovered, cached.excluded_apps, summary)
        raise
    discovered = {Target(d.region, d.app, d.addon_id).key: d.provider for d in found}
    record = replace(
        cached or Record(key=key), discovered=discovered, database_fetched_at=now, excluded_apps=tuple(excluded)
    )
    try:
        clients.store.save(record, now.timestamp())
    except StateError as exc:
        logger.warning("could not cache the discovered databases", extra={"error": str(exc)})
    logger.info("discovered databases", extra={"count": len(discovered)})
    return _kept(settings, discovered, tuple(excluded), summary)


def _kept(
    settings: Settings, discovered: dict[str, str], excluded_apps: tuple[str, ...], summary: Summary | None
) -> list[Target]:
    """The discovered targets EXCLUDE_APPS keeps (the patterns may have changed since the list was cached)."""
    targets = [target_from_key(k) for k in sorted(discovered)]
    kept = [t for t in targets if not settings.excluded(t.app)]
    if summary is not None:
        summary.excluded = len(set(excluded_apps)) + len({t.app for t in targets if settings.excluded(t.app)})
    return kept


def target_from_key(key: str) -> Target:
    region, app, addon_id = key.split("/", 2)
    return Target(region, app, addon_id)


def named_in_settings(settings: Settings, target: Target) -> bool:
    return any(t.key == target.key for t in settings.monitored)


def watched(record: Record | None, settings: Settings, target: Target) -> bool:
    """False for a database retired as deleted (unless MONITORED_DATABASES names it)."""
    return record is None or record.retired_at is None or named_in_settings(settings, target)
