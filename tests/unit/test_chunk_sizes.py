"""Issue 18, points 3 and 4: the largest item the discovery cache and the check cursor make, for 10,000 and
50,000 databases with names as long as real ones (`pytest -s` prints them). Measured on what the stores
write (`dump`), plus the key and the item's other attributes."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from backup_monitor.budget import CURSOR_KEY
from backup_monitor.records import Record
from backup_monitor.state.base import dump
from backup_monitor.state.chunks import split_list, split_record

KEY = "__discovery__/osc-fr1,osc-secnum-fr1,osc-secnum-fr2"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ATTRIBUTES = 60  # pk, version, expires_at: names and values, beside the key and the data
ITEM_LIMIT = 100_000


def names(n: int) -> list[tuple[str, str]]:
    """(region/app/addon_id, region/addon_id): the longest region, 48-character app names."""
    out = []
    for i in range(n):
        app = f"customer-portal-production-backend-worker-{i:06d}"[:48]
        addon = "ad-" + hashlib.sha256(str(i).encode()).hexdigest()[:24]
        out.append((f"osc-secnum-fr1/{app}/{addon}", f"osc-secnum-fr1/{addon}"))
    return out


@pytest.mark.parametrize("fleet", [10_000, 50_000])
def test_no_item_comes_near_the_limit(fleet: int) -> None:
    found = names(fleet)
    record = Record(
        key=KEY,
        discovered={name: "postgresql" for name, _ in found},
        unlisted={key: NOW - timedelta(minutes=i) for i, (_, key) in enumerate(found[: fleet // 2])},
        retiring=tuple(name for name, _ in found[: fleet // 10]),
        excluded_apps=tuple(f"customer-portal-production-frontend-pr{i:05d}" for i in range(1000)),
        database_fetched_at=NOW,
    )
    head, parts = split_record(record)
    records = {r.key: len(r.key) + len(dump(r)) + ATTRIBUTES for r in [head, *parts]}
    head_blob, part_blobs = split_list(CURSOR_KEY, "left", [key for _, key in found], NOW.timestamp())
    blobs = {b.key: len(b.key) + len(b.data) + ATTRIBUTES for b in [head_blob, *part_blobs]}
    for what, sizes in (("discovery", records), ("cursor", blobs)):
        key = max(sizes, key=sizes.__getitem__)
        total = sum(sizes.values())
        print(f"\n{fleet} databases, {what}: {len(sizes)} items, {total} bytes, largest {sizes[key]} bytes ({key})")
        assert sizes[key] < ITEM_LIMIT
