"""Reading a backups list entry by entry: one bad entry costs that entry, not the database."""

from __future__ import annotations

from typing import Any

import pytest

from backup_monitor.scalingo.errors import PayloadError, ScalingoError
from backup_monitor.scalingo.models import (
    MAX_LISTED_PROBLEMS,
    BackupListing,
    parse_backup_listing,
    parse_backups,
    usable_backups,
)


def entry(backup_id: Any = "b1", created_at: Any = "2026-11-27T01:00:00Z", **extra: Any) -> dict[str, Any]:
    return {"id": backup_id, "created_at": created_at, "status": "done", **extra}


def listing_of(*entries: Any) -> BackupListing:
    return parse_backup_listing({"database_backups": list(entries)})


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (entry(42), "field 'id' has the wrong type (int)"),
        (entry(True), "field 'id' has the wrong type (bool)"),
        ({"created_at": "2026-11-27T01:00:00Z", "status": "done"}, "field 'id' is missing"),
        (entry(created_at=None), "field 'created_at' is missing"),
        (entry(created_at="yesterday"), "not an ISO 8601 time"),
        (entry(created_at="0001-01-01T00:00:00+01:00"), "not an ISO 8601 time"),  # no UTC equivalent
        (entry(status=7), "field 'status' has the wrong type"),
        ("a string", "expected an object, got str"),
        (None, "expected an object, got NoneType"),
        ([entry()], "expected an object, got list"),
    ],
)
def test_an_unreadable_entry_is_skipped_and_the_rest_kept(bad: Any, reason: str) -> None:
    listing = listing_of(entry("before", "2026-11-26T01:00:00Z"), bad, entry("after", "2026-11-27T01:00:00Z"))
    assert [b.id for b in listing.backups] == ["after", "before"]
    assert (listing.skipped, listing.duplicates) == (1, 0)
    (problem,) = listing.problems
    assert problem.startswith("database_backups[1]")
    assert reason in problem
    assert not listing.complete


def test_problems_name_the_field_never_the_entry() -> None:
    listing = listing_of(entry(42, name="secret-looking-name-123"))
    assert "secret-looking-name-123" not in " ".join(listing.problems)
    assert "'id'" in listing.problems[0]


def test_a_repeated_id_counts_once_and_the_first_is_kept() -> None:
    listing = listing_of(
        entry("x", "2026-11-27T01:00:00Z", status="error"),
        entry("y", "2026-11-26T01:00:00Z"),
        entry("x", "2026-11-28T01:00:00Z", status="done"),
    )
    assert [(b.id, b.status) for b in listing.backups] == [("x", "error"), ("y", "done")]
    assert (listing.skipped, listing.duplicates) == (0, 1)
    assert listing.problems == ("database_backups[2]: duplicate id, the first entry with it is kept",)


def test_only_the_first_problems_are_kept_but_every_entry_is_counted() -> None:
    listing = listing_of(*[entry(i) for i in range(12)], entry("ok"), entry("ok"))
    assert (listing.skipped, listing.duplicates) == (12, 1)
    assert len(listing.problems) == MAX_LISTED_PROBLEMS
    assert [b.id for b in listing.backups] == ["ok"]


def test_a_clean_list_is_complete_and_sorted_newest_first() -> None:
    listing = listing_of(entry("old", "2026-11-25T01:00:00Z"), entry("new", "2026-11-27T01:00:00+01:00"))
    assert [b.id for b in listing.backups] == ["new", "old"]
    assert listing.complete
    assert listing.problems == ()


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ([], "expected an object"),
        ("x", "expected an object"),
        ({}, "'database_backups' is missing"),
        ({"database_backups": {"id": "x"}}, "wrong type"),
        ({"database_backups": None}, "'database_backups' is missing"),
    ],
)
def test_an_answer_unusable_as_a_whole_is_a_payload_error(payload: Any, expected: str) -> None:
    with pytest.raises(PayloadError, match=expected):
        parse_backup_listing(payload)


def test_a_list_whose_every_entry_is_unreadable_is_a_payload_error_for_the_list_callers() -> None:
    listing = listing_of(entry(1), "x")
    with pytest.raises(PayloadError, match=r"no backup entry could be read: .*'id'.* \(and 1 more\)"):
        usable_backups(listing)
    with pytest.raises(PayloadError):
        parse_backups({"database_backups": [entry(1)]})


def test_an_empty_list_is_no_error() -> None:
    assert usable_backups(listing_of()) == []
    assert parse_backups({"database_backups": []}) == []


def test_duplicates_alone_never_make_a_list_unusable() -> None:
    assert [b.id for b in parse_backups({"database_backups": [entry("a"), entry("a")]})] == ["a"]


def test_scalingo_errors_keep_their_constructor_and_carry_an_api() -> None:
    assert ScalingoError("boom").api == ""
    assert PayloadError("boom", api="db").api == "db"
    assert str(PayloadError("boom", api="db")) == "boom"
