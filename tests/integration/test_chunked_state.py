"""Issue 18, points 3 and 4: the discovery cache and the check cursor of a 10,000-database fleet, with
realistic names, are stored and read back on SQLite and on DynamoDB Local, no item near the 400 KB limit.

The fleet's size can be raised (`CHUNK_FLEET=50000`) to measure a larger one; the largest item is printed
(`pytest -s`)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from backup_monitor.budget import left_keys
from backup_monitor.check.after import load_blobs, save_cursor
from backup_monitor.check.model import Clients
from backup_monitor.check.targets import Targets, advance, discovery_key, load_discovery, resolve_targets
from backup_monitor.config import Settings
from backup_monitor.notifiers import ConsoleNotifier
from backup_monitor.records import Record
from backup_monitor.scalingo.client import ScalingoClient
from backup_monitor.scalingo.models import DiscoveredDatabase
from backup_monitor.state.base import StateError, StateStore
from backup_monitor.state.dynamodb import DynamoStateStore
from backup_monitor.state.sqlite import SqliteStateStore
from backup_monitor.status import known_targets, read_status

FLEET = int(os.environ.get("CHUNK_FLEET", "10000"))
REGIONS = ("osc-fr1", "osc-secnum-fr1")
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ITEM_LIMIT = 100_000  # the target: every item below 100 KB (DynamoDB refuses 400 KB)


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StateStore:
    if request.param == "sqlite":
        return SqliteStateStore(tmp_path / "state.sqlite3")
    return DynamoStateStore(request.getfixturevalue("dynamodb_table"))


def env_for(store: StateStore) -> dict[str, str]:
    if isinstance(store, DynamoStateStore):
        where = {"STATE_TABLE": store.table}
    else:
        assert isinstance(store, SqliteStateStore)
        where = {"STATE_PATH": store.path}
    return {
        "SCALINGO_API_TOKEN": "tk-us-not-used",
        "SCALINGO_REGIONS": ",".join(REGIONS),
        "DAILY_REPORT_AT": "",
        "EXCLUDE_APPS": "*-pr[0-9]*",
        **where,
    }


def fleet(n: int) -> list[DiscoveredDatabase]:
    """`n` databases with names as long as real ones: 48-character app names, 24-hex-digit addon ids."""
    found = []
    for i in range(n):
        app = f"customer-portal-production-backend-worker-{i:06d}"[:48]
        addon = "ad-" + hashlib.sha256(str(i).encode()).hexdigest()[:24]
        found.append(DiscoveredDatabase(REGIONS[i % 2], app, addon, f"{app}-{i:04d}", "postgresql"))
    return found


def discovering(
    found: list[DiscoveredDatabase], calls: list[str], monkeypatch: pytest.MonkeyPatch, client: Any
) -> None:
    """Scalingo's answers for `found` without HTTP (10,000 apps): the app lists (each region appended to
    `calls`) and each app's addons."""
    by_app: dict[tuple[str, str], list[DiscoveredDatabase]] = {}
    for d in found:
        by_app.setdefault((d.region, d.app), []).append(d)

    def list_apps(
        region: str, *, exclude: Callable[[str], bool] | None = None, excluded: list[str] | None = None
    ) -> list[str]:
        calls.append(region)
        if excluded is not None:  # review apps, as a real fleet has them
            excluded.extend(f"customer-portal-production-frontend-pr{i:05d}" for i in range(300))
        return [app for r, app in by_app if r == region]

    def list_addons(region: str, app: str) -> list[DiscoveredDatabase]:
        return by_app.get((region, app), [])

    monkeypatch.setattr(client, "list_apps", list_apps)
    monkeypatch.setattr(client, "list_addons", list_addons)


def item_sizes(store: StateStore) -> dict[str, int]:
    """Every stored item's size in bytes, as DynamoDB counts it (attribute names and values, UTF-8)."""
    if isinstance(store, DynamoStateStore):
        client = boto3.client("dynamodb")
        sizes: dict[str, int] = {}
        for page in client.get_paginator("scan").paginate(TableName=store.table):
            for item in page["Items"]:
                sizes[item["pk"]["S"]] = sum(len(name) + _value_size(dict(value)) for name, value in item.items())
        return sizes
    assert isinstance(store, SqliteStateStore)
    with sqlite3.connect(store.path) as conn:
        rows = [
            *conn.execute("SELECT pk, data FROM records"),
            *conn.execute("SELECT pk, data FROM blobs"),
        ]
    return {pk: len(pk) + len((data or "").encode()) + 40 for pk, data in rows}


def _value_size(value: dict[str, Any]) -> int:
    if "S" in value:
        return len(str(value["S"]).encode())
    if "N" in value:
        return len(str(value["N"]))
    return 8


def largest(store: StateStore, what: str) -> int:
    sizes = item_sizes(store)
    key = max(sizes, key=sizes.__getitem__)
    name = type(store).__name__
    print(f"\n{what}, {FLEET} databases, {name}: {len(sizes)} items, largest {sizes[key]} bytes ({key})")
    return sizes[key]


def test_a_large_fleets_discovery_is_stored_in_chunks_and_read_back(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings.from_env(env_for(store))
    clients = Clients(ScalingoClient.from_settings(settings), store, ConsoleNotifier())
    calls: list[str] = []
    found = fleet(FLEET)
    discovering(found, calls, monkeypatch, clients.scalingo)
    # GIVEN a first check WHEN it discovers the whole fleet THEN the list is cached, every item far below 400 KB
    targets = resolve_targets(settings, clients, NOW)
    assert len(targets.watched) == FLEET
    assert calls == list(REGIONS)
    cached = load_discovery(settings, clients)
    assert cached is not None
    assert cached.chunk_parts > 1
    assert cached.discovered == {f"{d.region}/{d.app}/{d.addon_id}": d.provider for d in found}
    assert len(cached.excluded_apps) == 300
    assert cached.database_fetched_at == NOW
    assert largest(store, "discovery") < ITEM_LIMIT
    # WHEN the next check runs THEN it reuses the cached list (no discovery), read in two batches
    reads = store.reads
    again = resolve_targets(settings, clients, NOW + timedelta(hours=1))
    assert calls == list(REGIONS)
    assert again.watched == targets.watched
    assert store.reads - reads <= 2 + (cached.chunk_parts // 100)
    # WHEN discovery later leaves a tenth of the fleet out THEN they are pending, stored and read back
    calls.clear()
    discovering(found[FLEET // 10 :], calls, monkeypatch, clients.scalingo)
    later = advance(settings, clients, NOW + timedelta(hours=7), Targets(record=cached), regions=REGIONS)
    assert later.record is not None
    assert len(later.record.unlisted) == FLEET // 10
    reread = load_discovery(settings, clients)
    assert reread is not None
    assert reread.unlisted == later.record.unlisted
    assert reread.discovered == cached.discovered
    assert reread.version == later.record.version
    assert largest(store, "discovery with a tenth unlisted") < ITEM_LIMIT
    # AND `backup-monitor status` reads the whole list from the chunks
    status_targets, excluded = known_targets(settings, reread)
    assert len(status_targets) == FLEET
    assert excluded == 300
    assert f"Databases watched: {FLEET} (300 apps excluded" in read_status(settings, NOW + timedelta(hours=8))


def test_the_same_discovery_inline_is_what_dynamodb_refuses(store: StateStore) -> None:
    """Why chunks: the whole list in one item is refused by DynamoDB (SQLite has no such limit)."""
    if not isinstance(store, DynamoStateStore):
        pytest.skip("SQLite has no item-size limit")
    settings = Settings.from_env(env_for(store))
    record = Record(
        key=discovery_key(settings),
        discovered={f"{d.region}/{d.app}/{d.addon_id}": d.provider for d in fleet(FLEET)},
        database_fetched_at=NOW,
    )
    with pytest.raises(StateError, match="size"):
        store.save(record, NOW.timestamp())


def test_a_cursor_of_a_large_fleet_is_stored_in_chunks_and_read_back(store: StateStore) -> None:
    settings = Settings.from_env(env_for(store))
    clients = Clients(ScalingoClient.from_settings(settings), store, ConsoleNotifier())
    left = [f"{d.region}/{d.addon_id}" for d in fleet(FLEET)]
    # GIVEN a check cut before any database WHEN it saves the cursor THEN every item is far below 400 KB
    save_cursor(store, [], left, NOW)
    assert largest(store, "cursor") < ITEM_LIMIT
    # WHEN the next check reads it THEN it gets the same keys, in the same order (two batches)
    reads = store.reads
    blobs = load_blobs(clients, [], with_cursor=True)
    assert left_keys(blobs) == left
    assert store.reads - reads == 2
    # WHEN that check got through half of them THEN the cursor shrinks, and reads back
    save_cursor(store, left, left[FLEET // 2 :], NOW + timedelta(minutes=5))
    assert left_keys(load_blobs(clients, [], with_cursor=True)) == left[FLEET // 2 :]
    # WHEN a check catches up THEN the cursor is empty again
    save_cursor(store, left[FLEET // 2 :], [], NOW + timedelta(minutes=10))
    assert left_keys(load_blobs(clients, [], with_cursor=True)) == []
