"""One contract, run unchanged against the SQLite store and against DynamoDB Local."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from backup_monitor.records import Incident, Record, ThreadRef
from backup_monitor.scalingo.models import Database
from backup_monitor.state.base import ConflictError, StateStore, dump
from backup_monitor.state.dynamodb import DynamoStateStore
from backup_monitor.state.sqlite import SqliteStateStore
from tests.conftest import NOW

ROOT = Path(__file__).resolve().parents[2]
Factory = Callable[[], tuple[StateStore, str, str]]


@pytest.fixture(params=["sqlite", "dynamodb"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    """Returns a factory of (store, kind, location); every store from one factory shares the same data."""
    if request.param == "sqlite":
        path = str(tmp_path / "state.sqlite3")
        return lambda: (SqliteStateStore(path), "sqlite", path)
    table: str = request.getfixturevalue("dynamodb_table")
    return lambda: (DynamoStateStore(table), "dynamodb", table)


def sample(key: str = "osc-fr1/shop/ad-1") -> Record:
    return Record(
        key=key,
        handled={"b1": "done", "b2": "error"},
        incidents={
            "failed": Incident("failed", NOW, NOW, "b2", NOW - timedelta(hours=3), "", ThreadRef("C1", "1700.1"))
        },
        database=Database("db1", "shop-1", "postgresql", True, (1,)),
        database_fetched_at=NOW,
        first_seen_at=NOW - timedelta(days=2),
    )


T = time.time()


def test_a_missing_record_is_absent(make_store: Factory) -> None:
    store, *_ = make_store()
    assert store.load_many(["nope"]) == {}


def test_saved_records_round_trip(make_store: Factory) -> None:
    store, *_ = make_store()
    saved = store.save(sample(), T)
    loaded = store.load_many([saved.key, "other"])
    assert list(loaded) == [saved.key]
    assert loaded[saved.key] == saved
    assert saved.version == 1


def test_many_records_load_in_batches(make_store: Factory) -> None:
    store, *_ = make_store()
    keys = [f"osc-fr1/app{i}/ad-{i}" for i in range(230)]
    for key in keys:
        store.save(Record(key=key, first_seen_at=NOW), T)
    store.reads = 0
    loaded = store.load_many(keys)
    assert set(loaded) == set(keys)
    assert store.reads <= 5  # 3 batches of at most 100 for DynamoDB, plus any unprocessed-key retries


def test_a_conflicting_commit_loses_and_changes_nothing(make_store: Factory) -> None:
    store, *_ = make_store()
    first = store.save(sample(), T)
    claimed = store.claim(first, "check-a", T)
    store.commit(replace(claimed, api_failures=1), "check-a", T)
    # A second writer still holding the old claim version tries to commit.
    with pytest.raises(ConflictError, match="changed or is claimed"):
        store.commit(replace(claimed, api_failures=7), "check-a", T)
    with pytest.raises(ConflictError):
        store.save(replace(first, api_failures=9), T)
    assert store.load_many([first.key])[first.key].api_failures == 1


def test_a_live_claim_blocks_another_check(make_store: Factory) -> None:
    store, *_ = make_store()
    record = store.save(sample(), T)
    store.claim(record, "check-a", T)
    fresh = store.load_many([record.key])[record.key]
    assert fresh.claim_owner == "check-a"
    with pytest.raises(ConflictError):
        store.claim(fresh, "check-b", T + 10)
    with pytest.raises(ConflictError):
        store.save(fresh, T + 10)


def test_an_expired_claim_is_taken_over(make_store: Factory) -> None:
    store, *_ = make_store()
    record = store.save(sample(), T)
    store.claim(record, "crashed-check", T, ttl=60)
    stale = store.load_many([record.key])[record.key]
    taken = store.claim(stale, "check-b", T + 61)
    done = store.commit(replace(taken, api_failures=2), "check-b", T + 62)
    loaded = store.load_many([record.key])[record.key]
    assert loaded.api_failures == 2
    assert loaded.claim_owner is None
    assert loaded.version == done.version
    with pytest.raises(ConflictError):
        store.commit(replace(taken, api_failures=5), "crashed-check", T + 63)


def test_a_new_record_can_be_claimed_once(make_store: Factory) -> None:
    store, *_ = make_store()
    new = Record(key="osc-fr1/new/ad-9")
    claimed = store.claim(new, "check-a", T)
    with pytest.raises(ConflictError):
        store.claim(new, "check-b", T)
    store.commit(replace(claimed, first_seen_at=NOW), "check-a", T)
    assert store.load_many([new.key])[new.key].first_seen_at == NOW


def test_two_processes_claiming_at_once_exactly_one_wins(make_store: Factory) -> None:
    store, kind, location = make_store()
    record = store.save(sample(), T)
    start_at = str(time.time() + 2.5)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "functions/backup_monitor")])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.support.claimer", kind, location, record.key, f"proc-{i}", start_at],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        for i in range(2)
    ]
    results = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert results == ["lost", "won"]


def test_a_quiet_check_performs_no_write(make_store: Factory) -> None:
    """The store writes only when asked; the monitor asks only when a record changed (see monitor tests)."""
    store, *_ = make_store()
    record = store.save(sample(), T)
    writes = store.writes
    store.load_many([record.key])
    assert store.writes == writes


def test_years_of_history_stay_small(make_store: Factory) -> None:
    store, *_ = make_store()
    # Scalingo's retention bounds what is listed; handled ids are pruned to those, so a record holds
    # at most a few dozen ids however long it lives.
    record = replace(sample(), handled={f"{i:024x}": "done" for i in range(80)})
    saved = store.save(record, T)
    size = len(dump(saved).encode())
    assert size < 6_000, size
    assert store.load_many([saved.key])[saved.key].handled == record.handled


def test_a_new_sqlite_state_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    SqliteStateStore(path)
    assert path.stat().st_mode & 0o777 == 0o600
