"""The stored form in chunks (state/chunks.py): split and join, generations never mixed, a cut between the
parts and the head, the inline form written before chunking, and the cursor's list of keys."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from backup_monitor import budget
from backup_monitor.budget import CURSOR_KEY, cursor_blob, left_keys, save_cursor_if_changed
from backup_monitor.records import Record, record_from_json, record_to_json
from backup_monitor.state import chunks
from backup_monitor.state.base import Blob, ConflictError, RequestCounter, StateError, dump
from backup_monitor.state.chunks import (
    complete,
    join_list,
    join_record,
    load_record,
    pack,
    part_key,
    save_list,
    save_record,
    split_list,
    split_record,
)

KEY = "__discovery__/osc-fr1,osc-secnum-fr1"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LIMIT = 600  # small parts, so a few dozen databases need several


class DictStore(RequestCounter):
    """The store contract in memory (versions checked as the real stores do), with a cut on demand: the
    write of `fail_on` raises as a crash would."""

    def __init__(self) -> None:
        super().__init__()
        self.records: dict[str, tuple[int, str]] = {}
        self.blobs: dict[str, Blob] = {}
        self.fail_on: str | None = None

    def load_many(self, keys: Sequence[str], *, unreadable: dict[str, str] | None = None) -> dict[str, Record]:
        self._count(reads=1)
        stored = {k: self.records[k] for k in keys if k in self.records}
        return {k: record_from_json(k, json.loads(data), version) for k, (version, data) in stored.items()}

    def save(self, record: Record, now: float) -> Record:
        if record.key == self.fail_on:
            raise StateError("cut")
        stored = self.records.get(record.key, (0, ""))[0]
        if stored != record.version:
            raise ConflictError(f"{record.key} changed")
        self._count(writes=1)
        self.records[record.key] = (record.version + 1, dump(record))
        return replace(record, version=record.version + 1)

    def claim(self, record: Record, owner: str, now: float, ttl: float = 0) -> Record:
        raise NotImplementedError

    def commit(self, record: Record, owner: str, now: float, *, release: bool = True, ttl: float = 0) -> Record:
        raise NotImplementedError

    def load_blobs(self, keys: Sequence[str]) -> dict[str, Blob]:
        self._count(reads=1)
        return {k: self.blobs[k] for k in keys if k in self.blobs}

    def save_blobs(self, blobs: Sequence[Blob]) -> None:
        if any(b.key == self.fail_on for b in blobs):
            raise StateError("cut")
        self._count(writes=1)
        self.blobs.update({b.key: b for b in blobs})


def fleet(n: int, tag: str = "") -> Record:
    """A discovery of `n` databases, with some of every chunked collection."""
    names = {f"osc-secnum-fr1/app-{i:04d}{tag}/ad-{i:024x}": "postgresql" for i in range(n)}
    return Record(
        key=KEY,
        discovered=names,
        unlisted={f"osc-secnum-fr1/ad-{i:024x}": NOW - timedelta(minutes=i) for i in range(0, n, 7)},
        retiring=tuple(f"osc-fr1/gone-{i}/ad-{i:024x}" for i in range(n // 10)),
        excluded_apps=tuple(f"review-pr{i}" for i in range(n // 5)),
        database_fetched_at=NOW,
    )


def same_content(a: Record | None, b: Record) -> bool:
    assert a is not None
    strip = {"chunk_parts", "chunk_generation"}
    return {k: v for k, v in record_to_json(a).items() if k not in strip} == {
        k: v for k, v in record_to_json(b).items() if k not in strip
    }


def test_pack_keeps_order_within_the_limit_and_makes_no_empty_group() -> None:
    groups = pack(["a" * 3, "b" * 4, "c" * 2, "d" * 9, "e"], len, limit=6)
    assert groups == [["aaa"], ["bbbb", "cc"], ["d" * 9], ["e"]]  # an entry larger than the limit: alone
    assert pack([], len, limit=6) == []


def test_a_large_record_splits_into_parts_below_the_limit_and_joins_back() -> None:
    record = fleet(60)
    head, parts = split_record(record, LIMIT)
    assert len(parts) > 5
    assert head.chunk_parts == len(parts)
    assert not head.discovered
    assert not head.unlisted
    assert not head.retiring
    assert not head.excluded_apps
    assert head.database_fetched_at is None  # a version before chunking reads the head as stale, not fresh
    assert {p.key for p in parts} == {part_key(KEY, head.chunk_generation, i) for i in range(len(parts))}
    for part in parts:
        entries = json.dumps(
            [part.discovered, record_to_json(part).get("unlisted", {}), part.retiring, part.excluded_apps]
        )
        assert len(entries) <= LIMIT + 40
        assert part.chunk_generation == head.chunk_generation
    joined = join_record(head, {p.key: p for p in parts})
    assert same_content(joined, record)


def test_a_small_record_stays_inline_as_before() -> None:
    store = DictStore()
    saved = save_record(store, fleet(3), NOW.timestamp(), LIMIT)
    assert list(store.records) == [KEY]
    stored = json.loads(store.records[KEY][1])
    assert len(stored["discovered"]) == 3
    assert "chunk_parts" not in stored
    assert saved.version == 1
    assert same_content(load_record(store, KEY), fleet(3))


def test_a_head_written_inline_by_the_version_before_reads_as_before() -> None:
    store = DictStore()
    store.save(fleet(60), NOW.timestamp())  # the whole discovery in one record, as before chunking
    loaded = load_record(store, KEY)
    assert loaded is not None
    assert loaded.version == 1
    assert same_content(loaded, fleet(60))
    # and the next write puts it in chunks, over that version
    save_record(store, replace(loaded, discovered={**loaded.discovered, "osc-fr1/new/ad-1": "mysql"}), 1.0, LIMIT)
    again = load_record(store, KEY)
    assert again is not None
    assert again.chunk_parts > 1
    assert "osc-fr1/new/ad-1" in again.discovered


def test_reads_are_two_batches_and_writes_go_to_the_other_slot() -> None:
    store = DictStore()
    first = save_record(store, fleet(60), NOW.timestamp(), LIMIT)
    reads = store.reads
    loaded = load_record(store, KEY)
    assert store.reads - reads == 2  # the head, then all its parts
    assert loaded is not None
    assert same_content(loaded, fleet(60))
    assert loaded.version == first.version
    second = save_record(store, replace(loaded, discovered=fleet(50, "x").discovered), 2.0, LIMIT)
    assert second.chunk_generation % 2 != first.chunk_generation % 2
    assert second.chunk_generation != first.chunk_generation
    # the first generation's parts are still there, untouched
    for i in range(first.chunk_parts):
        assert part_key(KEY, first.chunk_generation, i) in store.records
    assert same_content(load_record(store, KEY), replace(fleet(60), discovered=fleet(50, "x").discovered))


@pytest.mark.parametrize("cut", ["head", "a part"])
def test_a_cut_between_the_parts_and_the_head_leaves_the_previous_generation(cut: str) -> None:
    store = DictStore()
    save_record(store, fleet(60), NOW.timestamp(), LIMIT)
    before = load_record(store, KEY)
    assert before is not None
    changed = replace(before, discovered=fleet(80, "y").discovered)
    head, _parts = split_record(changed, LIMIT)
    store.fail_on = KEY if cut == "head" else part_key(KEY, head.chunk_generation, 2)
    with pytest.raises(StateError):
        save_record(store, changed, 2.0, LIMIT)
    after = load_record(store, KEY)
    assert after is not None
    assert same_content(after, fleet(60))
    assert after.version == before.version
    # the next write goes over the parts the cut left behind
    store.fail_on = None
    save_record(store, changed, 3.0, LIMIT)
    assert same_content(load_record(store, KEY), changed)


def test_a_writer_late_by_a_whole_write_is_a_conflict_and_touches_nothing() -> None:
    store = DictStore()
    save_record(store, fleet(60), NOW.timestamp(), LIMIT)
    a = load_record(store, KEY)
    b = load_record(store, KEY)
    assert a is not None
    assert b is not None
    save_record(store, replace(a, discovered=fleet(70, "a").discovered), 2.0, LIMIT)
    snapshot = dict(store.records)
    with pytest.raises(ConflictError):
        save_record(store, replace(b, discovered=fleet(70, "b").discovered), 2.0, LIMIT)
    assert store.records == snapshot
    assert same_content(load_record(store, KEY), replace(fleet(60), discovered=fleet(70, "a").discovered))


def test_parts_of_another_generation_are_never_mixed_in() -> None:
    # Two writers at the same instant: B overwrote a part after A's head went in (B's head then fails).
    store = DictStore()
    saved = save_record(store, fleet(60), NOW.timestamp(), LIMIT)
    key = part_key(KEY, saved.chunk_generation, 1)
    version, data = store.records[key]
    other = json.loads(data)
    other["chunk_generation"] = saved.chunk_generation + 2  # the same slot, another writer's generation
    other["discovered"] = {"osc-fr1/intruder/ad-9": "redis"}
    store.records[key] = (version + 1, json.dumps(other))
    loaded = load_record(store, KEY)
    assert loaded is not None
    assert not loaded.discovered
    assert loaded.database_fetched_at is None
    assert loaded.version == saved.version  # ... and written over
    save_record(store, replace(loaded, discovered=fleet(60).discovered, database_fetched_at=NOW), 2.0, LIMIT)
    assert "osc-fr1/intruder/ad-9" not in (load_record(store, KEY) or loaded).discovered


def test_a_missing_part_reads_as_empty_and_stale() -> None:
    store = DictStore()
    saved = save_record(store, fleet(60), NOW.timestamp(), LIMIT)
    del store.records[part_key(KEY, saved.chunk_generation, saved.chunk_parts - 1)]
    head = store.load_many([KEY])[KEY]
    loaded = complete(store, head)
    assert loaded is not None
    assert not loaded.discovered
    assert loaded.database_fetched_at is None
    assert complete(store, None) is None


def test_parts_beyond_the_heads_count_are_ignored() -> None:
    store = DictStore()
    first = save_record(store, fleet(90), NOW.timestamp(), LIMIT)
    second = save_record(store, replace(first, discovered=fleet(40, "s").discovered), 2.0, LIMIT)
    third = save_record(store, replace(second, discovered=fleet(20, "t").discovered), 3.0, LIMIT)
    assert third.chunk_parts < first.chunk_parts  # the same slot as the first, which had more parts
    assert same_content(load_record(store, KEY), replace(fleet(90), discovered=fleet(20, "t").discovered))


# ---- the cursor (a list in blobs) -----------------------------------------------------------------------------


def keys(n: int, tag: str = "") -> list[str]:
    return [f"osc-secnum-fr1/ad-{i:024x}{tag}" for i in range(n)]


def test_a_list_splits_and_joins_back_and_a_short_one_stays_inline() -> None:
    head, parts = split_list(CURSOR_KEY, "left", keys(100), 0.0, limit=LIMIT)
    assert len(parts) > 3
    assert all(len(p.data) <= LIMIT + 60 for p in parts)
    blobs = {b.key: b for b in [head, *parts]}
    assert join_list(blobs, CURSOR_KEY, "left") == keys(100)
    inline, none = split_list(CURSOR_KEY, "left", keys(3), 0.0, limit=LIMIT)
    assert none == []
    assert json.loads(inline.data) == {"left": keys(3)}


def test_the_cursor_in_chunks_through_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunks, "PART_BYTES", LIMIT)
    store = DictStore()
    assert save_cursor_if_changed(store, [], keys(100), 0.0)
    blobs = store.load_blobs([CURSOR_KEY])
    parts = budget.cursor_part_keys(blobs)
    assert len(parts) > 3
    blobs.update(store.load_blobs(parts))
    assert left_keys(blobs) == keys(100)
    # caught up: the cursor is one short blob again
    assert save_cursor_if_changed(store, keys(100), [], 1.0)
    assert left_keys(store.load_blobs([CURSOR_KEY])) == []
    assert budget.cursor_part_keys(store.load_blobs([CURSOR_KEY])) == []


def test_a_cursor_written_before_chunking_reads_as_before() -> None:
    blob = cursor_blob(keys(5), 0.0)
    assert left_keys({blob.key: blob}) == keys(5)


def test_a_cut_between_cursor_parts_and_head_leaves_the_previous_cursor() -> None:
    store = DictStore()
    save_list(store, CURSOR_KEY, "left", keys(100), 0.0, LIMIT)
    store.fail_on = CURSOR_KEY
    with pytest.raises(StateError):
        save_list(store, CURSOR_KEY, "left", keys(120, "n"), 1.0, LIMIT)
    blobs = store.load_blobs([CURSOR_KEY])
    blobs.update(store.load_blobs(budget.cursor_part_keys(blobs)))
    assert left_keys(blobs) == keys(100)


def test_cursor_parts_of_another_generation_read_as_an_empty_cursor() -> None:
    store = DictStore()
    save_list(store, CURSOR_KEY, "left", keys(100), 0.0, LIMIT)
    blobs = store.load_blobs([CURSOR_KEY])
    part = budget.cursor_part_keys(blobs)[1]
    data = json.loads(store.blobs[part].data)
    data["generation"] += 2
    store.blobs[part] = Blob(part, json.dumps(data), 0.0)
    blobs.update(store.load_blobs(budget.cursor_part_keys(blobs)))
    assert left_keys(blobs) == []
