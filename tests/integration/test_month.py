"""A month in production: 30 databases in two regions, a check every hour for 30 days, the real check over real
HTTP against the fake Scalingo API and the fake Slack, a real SQLite state, the clock passed in. Real problems
page on-call exactly once, in time; the noise of a month (glitches, renames, deletions, cancelled manual
backups, a database living on point-in-time recovery) never pages. The month is played once (about 80 s) and
judged by the tests below; `tests/support/month.py` is the simulation."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.month import (
    DAYS,
    Month,
    announced_twice,
    deletions_not_said_once,
    false_pages,
    figures,
    missed_outages,
    run_month,
)

WALL_LIMIT_SECONDS = 240.0


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> Month:
    played = run_month(Path(tmp_path_factory.mktemp("month")))
    print("\n" + figures(played))
    return played


def listed(title: str, offending: list[str]) -> str:
    return f"{title} ({len(offending)}):\n  " + "\n  ".join(offending)


def test_the_month_runs_every_check_in_a_few_minutes(month: Month) -> None:
    print("\n" + figures(month))
    # THEN every hour was checked, every planned event happened, and the whole month took a few minutes
    assert month.checks == DAYS * 24
    assert month.check_errors == [], listed("checks that could not list their databases", month.check_errors)
    assert [e.what for e in month.world.events] == [], "events of the story that never happened"
    assert month.world.delete_at_discovery is None, "the database to delete before a discovery never was"
    assert not month.world.discovery_missed_deletion, "the check after that deletion did not list the apps"
    assert month.wall_seconds < WALL_LIMIT_SECONDS, figures(month)


def test_no_false_pages(month: Month) -> None:
    # THEN every page (a message carrying SLACK_MENTION) is about an injected real problem of that database
    wrong = false_pages(month)
    assert wrong == [], listed("pages no injected real problem explains", wrong)


def test_no_missed_outages(month: Month) -> None:
    # THEN every injected real problem paged exactly once, within the grace plus one check of its onset
    wrong = missed_outages(month)
    assert wrong == [], listed("real problems not paged exactly once in time", wrong)


def test_nothing_announced_twice(month: Month) -> None:
    # THEN no incident is opened a second time (same addon id, kind, backup or slot), no backup announced twice
    wrong = announced_twice(month)
    assert wrong == [], listed("announced a second time", wrong)


def test_every_deletion_said_once(month: Month) -> None:
    # THEN each deleted database is said once to be no longer watched, with its open incidents closed, and no
    # database that still exists is said to be gone
    wrong = deletions_not_said_once(month)
    assert wrong == [], listed("deletions not said exactly once", wrong)
