"""Golden files: what Slack receives for each kind of message, in tests/snapshots/*.json.

After a deliberate change to the messages, regenerate them with
    UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/unit/test_snapshots.py
and review the diff: it is exactly what changes in Slack. Each file can be pasted into Block Kit Builder
(its "payload" object).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from backup_monitor.messages import (
    TITLES,
    DatabaseInfo,
    Message,
    edit_blocks,
    plain_fallback,
    render,
    render_digest,
    render_group,
    render_outage,
    render_success,
    render_verified,
)
from backup_monitor.records import ThreadRef
from backup_monitor.rules import Kind, Notice, Phase
from backup_monitor.scalingo.models import Backup
from tests.fakes.slack import refusal

SNAPSHOTS = Path(__file__).resolve().parents[1] / "snapshots"
UPDATE = os.environ.get("UPDATE_SNAPSHOTS") == "1"
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
THREAD = ThreadRef("C0BACKUPS", "1764205200.000100")
BILLING = DatabaseInfo("osc-fr1", "billing", "ad-billing", "billing-4567", "mysql")
SHOP = DatabaseInfo("osc-fr1", "shop-prod", "ad-shop", "shop-prod-1234", "postgresql")
DB_ID = "5f3c9a1b2d4e6f7a8b9c0d1e"


def link(backup_id: str) -> str:
    return (
        f"https://db-api.osc-fr1.scalingo.com/api/databases/{DB_ID}/backups/{backup_id}/download"
        "?token=EXAMPLE-NOT-A-REAL-TOKEN-0000000000000000"
    )


def backup(i: int, status: str = "done", size: int | None = 412_000_000) -> Backup:
    created = NOW - timedelta(hours=8, days=i)
    return Backup(
        f"6a1f{i:020x}", created, status, started_at=created, name=f"{created:%Y%m%d%H%M%S}_billing-4567", size=size
    )


def notice(kind: Kind, phase: Phase) -> Notice:
    """A representative notice of each kind and phase, as the rules make them."""
    failed = backup(0, "error", None)
    thread = THREAD if phase in (Phase.UPDATE, Phase.REMIND, Phase.RESOLVE) else None
    opened = NOW - timedelta(days=1) if phase in (Phase.UPDATE, Phase.REMIND, Phase.RESOLVE) else None
    common: dict[str, Any] = {"incident_key": kind.value, "thread": thread, "opened_at": opened}
    if phase is Phase.RESOLVE:
        return Notice(kind, phase, detail="backup 20261127010000_billing-4567 succeeded", **common)
    if phase is Phase.REMIND:
        return Notice(
            kind, phase, detail="no backup since the 01:00 UTC slot" if kind is Kind.MISSING else "", **common
        )
    if kind is Kind.MISSING:
        reasons = ("The database is stopped: Scalingo skips the periodic backup of a database that is not running",)
        slot = NOW - timedelta(hours=8)
        return Notice(kind, phase, slot=slot, detail="no backup since the 01:00 UTC slot", reasons=reasons, **common)
    if kind is Kind.CANNOT_CHECK:
        return Notice(kind, phase, detail="Scalingo answered 500 (3 checks in a row)", **common)
    if kind is Kind.PERIODIC_OFF:
        return Notice(kind, phase, **common)
    if kind is Kind.ENTRIES_SKIPPED:
        detail = (
            "2 entries of Scalingo's backup list could not be read and were skipped (first: "
            "database_backups[3]: field 'id' has the wrong type (int)); the others were judged"
        )
        return Notice(kind, phase, detail=detail, **common)
    if kind is Kind.STUCK:
        return Notice(kind, phase, backup=backup(0, "running", None), **common)
    if kind is Kind.SUSPICIOUS:
        return Notice(kind, phase, backup=backup(0, "done", 41_000_000), median_size=610_000_000, **common)
    if kind is Kind.SUCCEEDED:
        return Notice(kind, phase, backup=backup(0))
    if kind is Kind.ARCHIVE_UNREADABLE:
        detail = "the tar member 20261127010000_billing-4567.sql is cut short (4096 of 8752 bytes)"
        return Notice(kind, phase, backup=backup(0), detail=detail, **common)
    if kind is Kind.VERIFY_SKIPPED:
        detail = "the archive (7.2 GB) is larger than VERIFY_MAX_GB (5 GB)"
        return Notice(kind, phase, backup=backup(0, size=7_200_000_000), detail=detail, **common)
    if kind is Kind.ARCHIVE_VERIFIED:
        detail = "gzip (1 member, CRC and length), tar (1 entry, end marker), MySQL dump: SQL text (x.sql)"
        return Notice(kind, phase, backup=backup(0), detail=detail)
    if phase is Phase.NOTICE and kind not in (Kind.FAILED, Kind.SUSPICIOUS):  # e.g. a database no longer watched
        return Notice(kind, phase, detail="Its addon or its app was deleted (Scalingo answers 404)")
    if kind is Kind.FAILED and phase is Phase.UPDATE:
        return Notice(kind, phase, backup=failed, quiet=True, **common)
    detail = "a later backup succeeded" if phase is Phase.NOTICE else ""
    return Notice(kind, phase, backup=failed, detail=detail, **common)


def dump(message: Message) -> dict[str, Any]:
    body: dict[str, Any] = {"payload": message.payload()}
    if message.edit is not None:
        body["edit"] = {
            "channel": message.edit.channel,
            "ts": message.edit.ts,
            "text": message.edit_text,
            "blocks": edit_blocks(message.edit_text),
        }
    return body


def successes(count: int, links: bool) -> list[tuple[Notice, DatabaseInfo, str | None]]:
    items = []
    for i in range(count):
        b = backup(i)
        items.append(
            (Notice(Kind.SUCCEEDED, Phase.NOTICE, None, b), SHOP if i % 2 else BILLING, link(b.id) if links else None)
        )
    return items


def storm(kind: Kind, phase: Phase, count: int = 6) -> list[tuple[Notice, DatabaseInfo]]:
    """The same notice on `count` databases, as one check of a storm makes them."""
    one = notice(kind, phase)
    return [
        (one, DatabaseInfo("osc-fr1", f"shop-{i}", f"ad-shop-{i}", f"shop-{i}-1234", "postgresql"))
        for i in range(count)
    ]


def permalink(thread: ThreadRef) -> str:
    return f"https://acme.slack.com/archives/{thread.channel}/p{thread.ts.replace('.', '')}"


def cases() -> dict[str, Callable[[], dict[str, Any]]]:
    found: dict[str, Callable[[], dict[str, Any]]] = {}
    incidents = sorted({k for k, p in TITLES if p is Phase.OPEN})
    # said once: no reminder (a skipped verification has no resolution either; skipped entries close silently here)
    reminded = [k for k in incidents if k not in (Kind.VERIFY_SKIPPED, Kind.ENTRIES_SKIPPED, Kind.PITR_ONLY)]
    pairs = [*TITLES, *((k, p) for k in reminded for p in (Phase.REMIND, Phase.RESOLVE))]
    for kind, phase in pairs:
        if kind in (Kind.SUCCEEDED, Kind.ARCHIVE_VERIFIED):
            continue

        def one(kind: Kind = kind, phase: Phase = phase) -> dict[str, Any]:
            if kind is Kind.API_OUTAGE:
                return dump(render_outage(notice(kind, phase), "osc-fr1", mention="<!here>"))
            return dump(render(notice(kind, phase), BILLING, mention="<!here>"))

        found[f"{kind.value}_{phase.value}"] = one
    found["succeeded_each"] = lambda: dump(
        render_success(notice(Kind.SUCCEEDED, Phase.NOTICE), BILLING, link(backup(0).id))
    )
    found["archive_verified_notice"] = lambda: dump(
        render_verified([(notice(Kind.ARCHIVE_VERIFIED, Phase.NOTICE), BILLING)])
    )
    found["digest_with_links"] = lambda: dump(render_digest(successes(3, links=True))[0].message)
    found["digest_without_links"] = lambda: dump(render_digest(successes(3, links=False))[0].message)
    found["digest_compact_count"] = lambda: dump(render_digest(successes(60, links=True), threaded=True)[0].message)
    found["digest_compact_part_1"] = lambda: dump(render_digest(successes(60, links=True), threaded=True)[1].message)
    found["group_failed_open"] = lambda: dump(
        render_group(storm(Kind.FAILED, Phase.OPEN), mention="<!here>")[0].message
    )
    found["group_failed_remind"] = lambda: dump(
        render_group(storm(Kind.FAILED, Phase.REMIND), permalink=permalink)[0].message
    )
    found["group_missing_resolve"] = lambda: dump(render_group(storm(Kind.MISSING, Phase.RESOLVE))[0].message)
    found["plain_text_fallback"] = lambda: dump(
        plain_fallback(render(notice(Kind.FAILED, Phase.OPEN), BILLING, mention="<!here>"))
    )
    return found


@pytest.mark.parametrize("name", sorted(cases()))
def test_message_matches_its_golden_file(name: str) -> None:
    rendered = json.dumps(cases()[name](), indent=2, ensure_ascii=False) + "\n"
    path = SNAPSHOTS / f"{name}.json"
    if UPDATE:
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(rendered, encoding="utf-8")
    assert path.exists(), f"no golden file {path.name}: run UPDATE_SNAPSHOTS=1 pytest tests/unit/test_snapshots.py"
    assert path.read_text(encoding="utf-8") == rendered, f"{path.name} changed: review, then regenerate"
    payload = json.loads(rendered)["payload"]
    assert refusal(payload) is None


def test_no_golden_file_is_left_over() -> None:
    assert {p.stem for p in SNAPSHOTS.glob("*.json")} == set(cases())
