"""One unreadable record never hides the others, and a record of a newer format is never overwritten.

Run against the SQLite store and DynamoDB Local; the bad records are written straight into the store."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from backup_monitor.records import RECORD_FORMAT, Record
from backup_monitor.state.base import ConflictError, StateStore, UnreadableRecordError
from backup_monitor.state.dynamodb import DynamoStateStore
from backup_monitor.state.sqlite import SqliteStateStore
from tests.conftest import NOW

T = NOW.timestamp()
KEYS = ["osc-fr1/shop/ad-1", "osc-fr1/blog/ad-2", "osc-fr1/crm/ad-3"]
BAD = KEYS[1]


@dataclass
class Backend:
    """A store, and raw access to what it holds under one key (to corrupt it, and to see it unchanged)."""

    store: StateStore
    put_raw: Callable[[str, str, int], None]  # key, data, version
    get_raw: Callable[[str], Any]


def _sqlite(tmp_path: Path) -> Backend:
    path = tmp_path / "state.sqlite3"
    store = SqliteStateStore(path)

    def put_raw(key: str, data: str, version: int) -> None:
        with sqlite3.connect(path) as conn:
            conn.execute(
                "INSERT INTO records (pk, version, data) VALUES (?, ?, ?) "
                "ON CONFLICT(pk) DO UPDATE SET version = excluded.version, data = excluded.data",
                (key, version, data),
            )
        conn.close()

    def get_raw(key: str) -> Any:
        with sqlite3.connect(path) as conn:
            row = conn.execute("SELECT * FROM records WHERE pk = ?", (key,)).fetchone()
        conn.close()
        return row

    return Backend(store, put_raw, get_raw)


def _dynamodb(table: str) -> Backend:
    client = boto3.client("dynamodb")

    def put_raw(key: str, data: str, version: int) -> None:
        client.put_item(TableName=table, Item={"pk": {"S": key}, "version": {"N": str(version)}, "data": {"S": data}})

    def get_raw(key: str) -> Any:
        return client.get_item(TableName=table, Key={"pk": {"S": key}}, ConsistentRead=True).get("Item")

    return Backend(DynamoStateStore(table), put_raw, get_raw)


@pytest.fixture(params=["sqlite", "dynamodb"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return _sqlite(tmp_path)
    return _dynamodb(request.getfixturevalue("dynamodb_table"))


def _three_records(backend: Backend) -> None:
    for key in KEYS:
        backend.store.save(Record(key=key, first_seen_at=NOW, handled={"b1": "done"}), T)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ('{"format": 1, "handled": {"b1": "do', "is not valid JSON"),
        ("[1, 2, 3]", "is not a JSON object"),
        ('{"format": 1, "incidents": ["failed"]}', "has a field of the wrong type or shape"),
        ('{"format": 1, "first_seen_at": "yesterday-ish"}', "has a field of the wrong type or shape"),
        ('{"format": 1, "api_failures": "many"}', "has a field of the wrong type or shape"),
    ],
)
def test_one_unreadable_record_leaves_the_others_readable(backend: Backend, data: str, reason: str) -> None:
    # GIVEN three records, one of them corrupted in place
    _three_records(backend)
    backend.put_raw(BAD, data, 2)
    # WHEN the three are read asking for the unreadable ones
    unreadable: dict[str, str] = {}
    loaded = backend.store.load_many(KEYS, unreadable=unreadable)
    # THEN the two good ones are returned and the bad one is named, with what is wrong but not its content
    assert sorted(loaded) == sorted(k for k in KEYS if k != BAD)
    assert all(r.handled == {"b1": "done"} for r in loaded.values())
    assert list(unreadable) == [BAD]
    assert unreadable[BAD].startswith(f"state record {BAD!r} ")
    assert reason in unreadable[BAD]
    assert "yesterday" not in unreadable[BAD]
    assert "many" not in unreadable[BAD]


def test_without_unreadable_an_unreadable_record_still_raises(backend: Backend) -> None:
    _three_records(backend)
    backend.put_raw(BAD, "{broken", 2)
    with pytest.raises(UnreadableRecordError, match=f"state record {BAD!r} is not valid JSON"):
        backend.store.load_many(KEYS)


def test_a_record_of_a_newer_format_is_unreadable_and_never_overwritten(backend: Backend) -> None:
    # GIVEN a record written by a newer version of the monitor
    _three_records(backend)
    newer = json.dumps({"format": 99, "handled": {"b1": "done"}, "something_new": {"x": [1, 2]}})
    backend.put_raw(BAD, newer, 7)
    before = backend.get_raw(BAD)
    # WHEN it is read THEN it is left out, saying why
    unreadable: dict[str, str] = {}
    loaded = backend.store.load_many(KEYS, unreadable=unreadable)
    assert BAD not in loaded
    assert unreadable == {
        BAD: f"state record {BAD!r} was written by a newer version of the monitor "
        f"(format 99, this one reads up to {RECORD_FORMAT})"
    }
    # WHEN this version takes it for absent and writes it as new THEN the store refuses: the key exists
    absent = Record(key=BAD, first_seen_at=NOW)
    with pytest.raises(ConflictError):
        backend.store.save(absent, T)
    with pytest.raises(ConflictError):
        backend.store.claim(absent, "check-a", T)
    # THEN the record is exactly as the newer version left it
    assert backend.get_raw(BAD) == before
    assert backend.store.load_many([k for k in KEYS if k != BAD]).keys() == loaded.keys()
