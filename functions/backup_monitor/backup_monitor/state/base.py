"""The state-store contract shared by the DynamoDB and SQLite stores."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from backup_monitor.records import Record, RecordFormatError, record_to_json

RECORD_TTL_SECONDS = 30 * 24 * 3600  # refreshed by the daily database-info refresh; lets dropped databases expire
CLAIM_SECONDS = 300.0


class StateError(Exception):
    """The state store failed (unreachable, throttled past retries, corrupt record)."""


class ConflictError(StateError):
    """The record changed since it was read, or another check holds a live claim on it."""


class UnreadableRecordError(StateError, RecordFormatError):
    """One stored record cannot be read (corrupt, of the wrong shape, or written by a newer version): the
    records module's RecordFormatError, as a StateError. Built the same way: (key, problem)."""


@dataclass(frozen=True, slots=True)
class Blob:
    """An opaque value kept beside the database records under its own key (sealed tokens, the check cursor).

    `expires_at` (epoch seconds) is the DynamoDB TTL: DynamoDB deletes the item some time after it."""

    key: str
    data: str
    expires_at: float

    def __repr__(self) -> str:
        return f"Blob({self.key!r}, {len(self.data)} chars, expires_at={self.expires_at})"


class RequestCounter:
    """Thread-safe counts of store requests (the benchmark and the quiet-check tests read them)."""

    def __init__(self) -> None:
        self.reads = 0
        self.writes = 0
        self._count_lock = threading.Lock()

    def _count(self, reads: int = 0, writes: int = 0) -> None:
        with self._count_lock:
            self.reads += reads
            self.writes += writes


class StateStore(Protocol):
    """One record per monitored database, versioned; claims keep overlapping checks apart."""

    reads: int
    writes: int

    def load_many(self, keys: Sequence[str], *, unreadable: dict[str, str] | None = None) -> dict[str, Record]:
        """The stored records of `keys` (absent keys are left out).

        A record that cannot be read raises UnreadableRecordError; with `unreadable` given it is left out instead
        and reported there (`unreadable[key] = reason`), and the others are returned. It is still stored: an
        insert over it (version 0) fails with ConflictError, so this version never overwrites it."""
        ...

    def save(self, record: Record, now: float) -> Record:
        """Write `record` if it is still at `record.version` and not claimed by a live check."""
        ...

    def claim(self, record: Record, owner: str, now: float, ttl: float = CLAIM_SECONDS) -> Record:
        """Claim the record as read (same version, no live claim) before sending; returns it claimed."""
        ...

    def commit(
        self, record: Record, owner: str, now: float, *, release: bool = True, ttl: float = CLAIM_SECONDS
    ) -> Record:
        """Write what was delivered, if `owner` still holds the claim at `record.version`; release the claim, or
        (`release=False`: a write after each accepted message) keep it for `ttl` more seconds."""
        ...

    def load_blobs(self, keys: Sequence[str]) -> dict[str, Blob]:
        """The stored blobs of `keys`, in batches (absent keys are left out, expired ones may be returned)."""
        ...

    def save_blobs(self, blobs: Sequence[Blob]) -> None:
        """Write `blobs` in batches, unconditionally (last writer wins)."""
        ...


def shard_of(store: StateStore) -> str:
    """The shard a store was opened for (`shard=` of the stores; wiring.build_store gives the settings'): the
    one whose cursor and bearer the check's `after` stage reads and writes through it. "" without a shard, and
    for a store that has no such attribute (a test's own)."""
    shard = getattr(store, "shard", "")
    return shard if isinstance(shard, str) else ""


def dump(record: Record) -> str:
    """The record's data as compact JSON."""
    return json.dumps(record_to_json(record), separators=(",", ":"), sort_keys=True)


def load_data(raw: Any, key: str) -> dict[str, Any]:
    """Parse a stored JSON document; a corrupt one is an UnreadableRecordError naming the record."""
    if raw is None or raw == "":
        return {}
    if not isinstance(raw, str):
        raise UnreadableRecordError(key, f"has data of the wrong type ({type(raw).__name__}, not JSON text)")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise UnreadableRecordError(key, "is not valid JSON") from None
    if not isinstance(data, dict):
        raise UnreadableRecordError(key, "is not a JSON object")
    return data


Row = TypeVar("Row")


def read_records(
    rows: Iterable[Row],
    key_of: Callable[[Row], str],
    parse: Callable[[Row], Record],
    unreadable: dict[str, str] | None,
) -> dict[str, Record]:
    """Each stored row as its record; one that cannot be read raises, or with `unreadable` is reported there."""
    found: dict[str, Record] = {}
    for row in rows:
        try:
            record = parse(row)
        except RecordFormatError as exc:  # an UnreadableRecordError too
            if unreadable is None:
                if isinstance(exc, UnreadableRecordError):
                    raise
                raise UnreadableRecordError(exc.key, exc.problem) from None
            unreadable[key_of(row)] = str(exc)
            continue
        found[key_of(row)] = record
    return found


def load_renamed(
    store: StateStore,
    keys: Mapping[str, str],
    *,
    unreadable: dict[str, str] | None = None,
    adopted: set[str] | None = None,
) -> dict[str, Record]:
    """The records of `keys` (current key -> the key an older version stored it under), keyed on the current
    keys: a record found only under its old key is returned as the current key's, not yet written (version 0;
    its key is added to `adopted`, so the caller writes it once). The old record is left as it is (its TTL
    expires it). Nothing is read twice for a database whose record is already under its current key."""
    records = store.load_many(list(keys), unreadable=unreadable)
    old = {legacy: key for key, legacy in keys.items() if key not in records and legacy != key}
    if unreadable is not None:
        old = {legacy: key for legacy, key in old.items() if key not in unreadable}
    if not old:
        return records
    broken: dict[str, str] = {}
    found = store.load_many(list(old), unreadable=broken if unreadable is not None else None)
    for legacy, reason in broken.items():
        if unreadable is not None:
            unreadable[old[legacy]] = reason
    for legacy, record in found.items():
        key = old[legacy]
        records[key] = replace(record, key=key, version=0, claim_owner=None, claim_expires_at=None)
        if adopted is not None:
            adopted.add(key)
    return records
