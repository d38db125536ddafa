"""A stored form in chunks for the values that grow with the fleet (the discovery cache, the check cursor), so
no item comes near DynamoDB's 400 KB limit, whatever the number of databases.

A value that fits one part is stored inline under its key, as before. A larger one is a head under that key
(how many parts, and their generation) and parts under `<key>/part/<generation % 2>/<n>`, each holding its
generation too (a generation is the previous one plus an odd random number: the other slot, and never the
generation a concurrent writer picked). A write puts the parts first, then the head: the parts of a
generation go to the slot the current head does not use, so a cut between them leaves the previous head
pointing at its own, untouched parts. A reader takes the head, then its parts in one batch, and uses them
only if every one is there and of the head's generation (two generations are never mixed); otherwise the
value reads as empty (a record: empty and stale, so it is discovered again and written over). Parts beyond
the head's count (from a larger earlier generation) are ignored, and overwritten by a later one.

Records: the discovery's collections (`discovered`, `unlisted`, `retiring`, `excluded_apps`, `first_listed`,
`pass_todo`) and its `database_fetched_at` go to the parts (the small `pass_started`/`pass_completed` stay in
the head); the head keeps none of them, so a version before chunking reads an
empty, stale list and discovers again (it never watches an empty list as if it were fresh). Parts are plain
records, written conditionally on their version like any other (a concurrent writer is a ConflictError), and
the head last, conditionally on the version its writer read.

Blobs (the cursor): a head `{"left": [], "generation": g, "parts": n}` and parts `{"generation": g, "left":
[...]}`, written unconditionally (last writer wins) like every blob; a version before chunking reads an empty
cursor (the databases left are only checked in another order).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from backup_monitor.records import Record
from backup_monitor.state.base import RECORD_TTL_SECONDS, Blob, ConflictError, StateStore

logger = logging.getLogger(__name__)

# JSON characters of entries in one part (ASCII: JSON escapes the rest, so characters are bytes): with the
# record's other fields and the item's attributes, an item stays near 65 KB, far below 400 KB.
PART_BYTES = 64_000

T = TypeVar("T")


def next_generation(previous: int) -> int:
    """The generation after `previous`: of the other parity (the other slot), and random beyond that, so two
    writers starting from the same head write different generations (a part one of them overwrote never
    passes for the other's)."""
    return previous + 1 + 2 * secrets.randbelow(2**20)


def part_key(key: str, generation: int, index: int) -> str:
    return f"{key}/part/{generation % 2}/{index}"


def part_keys(key: str, generation: int, parts: int) -> list[str]:
    return [part_key(key, generation, i) for i in range(parts)]


def pack(entries: Sequence[T], size: Callable[[T], int], limit: int | None = None) -> list[list[T]]:
    """Consecutive `entries` in groups of at most `limit` in total `size` (an entry larger alone: its own
    group); no group is empty, and no entries: no group."""
    limit = PART_BYTES if limit is None else limit
    groups: list[list[T]] = []
    used = limit + 1
    for entry in entries:
        n = size(entry)
        if used + n > limit:
            groups.append([])
            used = 0
        groups[-1].append(entry)
        used += n
    return groups


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))


# ---- records -------------------------------------------------------------------------------------------------

# One entry of a record's chunked collections: (field, key, value).
Entry = tuple[str, str, Any]


def _entries(record: Record) -> list[Entry]:
    return [
        *(("discovered", k, v) for k, v in sorted(record.discovered.items())),
        *(("unlisted", k, v) for k, v in sorted(record.unlisted.items())),
        *(("retiring", name, None) for name in sorted(record.retiring)),
        *(("excluded_apps", app, None) for app in sorted(record.excluded_apps)),
        *(("first_listed", k, v) for k, v in sorted(record.first_listed.items())),
        *(("pass_todo", app, None) for app in record.pass_todo),  # in its order
    ]


def _entry_size(entry: Entry) -> int:
    _, key, value = entry
    return _json_size(key) + 2 + (_json_size(value.isoformat() if isinstance(value, datetime) else value))


def _emptied(record: Record) -> Record:
    return replace(
        record,
        discovered={},
        unlisted={},
        retiring=(),
        excluded_apps=(),
        first_listed={},
        pass_todo=(),
        pass_started={},
        pass_completed={},
        database_fetched_at=None,
    )


def split_record(record: Record, limit: int | None = None) -> tuple[Record, list[Record]]:
    """The head and the parts to store for `record` (no parts: it is stored inline, as it is). The parts are
    of the next generation, at version 0 (the writer sets the versions of the parts it overwrites)."""
    limit = PART_BYTES if limit is None else limit
    entries = _entries(record)
    if sum(map(_entry_size, entries)) <= limit:
        return replace(record, chunk_parts=0), []
    generation = next_generation(record.chunk_generation)
    groups = pack(entries, _entry_size, limit)
    parts = []
    for index, group in enumerate(groups):
        part = Record(
            key=part_key(record.key, generation, index),
            chunk_generation=generation,
            database_fetched_at=record.database_fetched_at if index == 0 else None,
            discovered={k: v for f, k, v in group if f == "discovered"},
            unlisted={k: v for f, k, v in group if f == "unlisted"},
            retiring=tuple(k for f, k, _ in group if f == "retiring"),
            excluded_apps=tuple(k for f, k, _ in group if f == "excluded_apps"),
            first_listed={k: v for f, k, v in group if f == "first_listed"},
            pass_todo=tuple(k for f, k, _ in group if f == "pass_todo"),
        )
        parts.append(part)
    head = replace(
        _emptied(record),
        pass_started=record.pass_started,  # small: kept in the head
        pass_completed=record.pass_completed,
        chunk_parts=len(parts),
        chunk_generation=generation,
    )
    return head, parts


def join_record(head: Record, parts: Mapping[str, Record]) -> Record | None:
    """The record as in memory from its head and the stored parts (by key); None when a part of the head's
    generation is missing. A head with no parts is returned as it is (inline)."""
    if not head.chunk_parts:
        return head
    found = []
    for key in part_keys(head.key, head.chunk_generation, head.chunk_parts):
        part = parts.get(key)
        if part is None or part.chunk_generation != head.chunk_generation:
            return None
        found.append(part)
    return replace(
        head,
        discovered={k: v for p in found for k, v in p.discovered.items()},
        unlisted={k: v for p in found for k, v in p.unlisted.items()},
        retiring=tuple(n for p in found for n in p.retiring),
        excluded_apps=tuple(a for p in found for a in p.excluded_apps),
        first_listed={k: v for p in found for k, v in p.first_listed.items()},
        pass_todo=tuple(a for p in found for a in p.pass_todo),
        database_fetched_at=found[0].database_fetched_at,
    )


def complete(store: StateStore, head: Record | None) -> Record | None:
    """`head` as read (with `load_many`) made whole: its parts read in one batch. Parts missing or of another
    generation (a concurrent writer, or one cut half-way): the head emptied and stale, so a check discovers
    again and writes over it (its version is kept)."""
    if head is None or not head.chunk_parts:
        return head
    keys = part_keys(head.key, head.chunk_generation, head.chunk_parts)
    broken: dict[str, str] = {}
    whole = join_record(head, store.load_many(keys, unreadable=broken))
    if whole is None:
        logger.warning(
            "a stored record in chunks is incomplete, it reads as empty",
            extra={"key": head.key, "parts": head.chunk_parts, "unreadable": len(broken)},
        )
        return _emptied(head)
    return whole


def load_record(store: StateStore, key: str, *, unreadable: dict[str, str] | None = None) -> Record | None:
    """The record under `key`, inline or in chunks (two batched reads: the head, then its parts)."""
    return complete(store, store.load_many([key], unreadable=unreadable).get(key))


def save_record(store: StateStore, record: Record, now: float, limit: int | None = None) -> Record:
    """Write `record` (as in memory, read at `record.version`): inline if it fits one part, else its parts
    then its head, each conditional on its version (ConflictError: another writer). Returns it as in memory,
    at its new version.

    The head is read again with the parts it overwrites (one batch): when another writer changed it since
    `record` was read, nothing is written (ConflictError), so a writer late by a whole write never overwrites
    the parts the new head points to."""
    head, parts = split_record(record, limit)
    if parts:
        existing = store.load_many([record.key, *(p.key for p in parts)], unreadable={})
        current = existing.get(record.key)
        if (current.version if current is not None else 0) != record.version:
            raise ConflictError(f"state record {record.key!r} changed since it was read")
        for part in parts:
            old = existing.get(part.key)
            store.save(replace(part, version=old.version if old else 0), now)
    saved = store.save(head, now)
    return replace(
        record,
        version=saved.version,
        chunk_parts=head.chunk_parts,
        chunk_generation=head.chunk_generation,
        claim_owner=None,
        claim_expires_at=None,
    )


# ---- blobs (a list of strings) --------------------------------------------------------------------------------


def _blob_json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))


def _parse_blob(blob: Blob | None) -> dict[str, Any] | None:
    if blob is None:
        return None
    try:
        data = json.loads(blob.data)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _strings(data: Mapping[str, Any], field: str) -> list[str]:
    values = data.get(field)
    return [v for v in values if isinstance(v, str)] if isinstance(values, list) else []


def _head_of(data: Mapping[str, Any]) -> tuple[int, int]:
    """(generation, parts) of a blob head; (0, 0) inline."""
    generation, parts = data.get("generation"), data.get("parts")
    if isinstance(generation, int) and isinstance(parts, int) and parts > 0:
        return generation, parts
    return 0, 0


def blob_part_keys(blobs: Mapping[str, Blob], key: str) -> list[str]:
    """The keys of the parts the head blob `key` (in `blobs`) points to (none: inline or absent)."""
    data = _parse_blob(blobs.get(key))
    generation, parts = _head_of(data) if data is not None else (0, 0)
    return part_keys(key, generation, parts)


def join_list(blobs: Mapping[str, Blob], key: str, field: str) -> list[str]:
    """The list stored under `key` (inline or in parts, all in `blobs`); empty when absent, unreadable, or
    its parts are missing or of another generation."""
    data = _parse_blob(blobs.get(key))
    if data is None:
        return []
    generation, parts = _head_of(data)
    if not parts:
        return _strings(data, field)
    values: list[str] = []
    for part_name in part_keys(key, generation, parts):
        part = _parse_blob(blobs.get(part_name))
        if part is None or part.get("generation") != generation:
            logger.warning("a stored list in chunks is incomplete, it reads as empty", extra={"key": key})
            return []
        values.extend(_strings(part, field))
    return values


def split_list(
    key: str, field: str, values: Sequence[str], now: float, previous: int = 0, limit: int | None = None
) -> tuple[Blob, list[Blob]]:
    """The head blob and part blobs for `values` (no parts: inline); `previous` is the generation of the head
    stored now (the parts go to the other slot)."""
    limit = PART_BYTES if limit is None else limit
    expires = now + RECORD_TTL_SECONDS
    size = sum(_json_size(v) + 1 for v in values)
    if size <= limit:
        return Blob(key, _blob_json({field: list(values)}), expires), []
    generation = next_generation(previous)
    groups = pack(values, lambda v: _json_size(v) + 1, limit)
    parts = [
        Blob(part_key(key, generation, i), _blob_json({"generation": generation, field: group}), expires)
        for i, group in enumerate(groups)
    ]
    head = Blob(key, _blob_json({field: [], "generation": generation, "parts": len(parts)}), expires)
    return head, parts


def save_list(
    store: StateStore, key: str, field: str, values: Sequence[str], now: float, limit: int | None = None
) -> None:
    """Write the list: inline if it fits one part, else its parts (after reading the current head, to use the
    other slot) and then its head."""
    head, parts = split_list(key, field, values, now, limit=limit)
    if parts:
        current = _parse_blob(store.load_blobs([key]).get(key))
        previous = _head_of(current)[0] if current is not None else 0
        head, parts = split_list(key, field, values, now, previous, limit)
        store.save_blobs(parts)
    store.save_blobs([head])
