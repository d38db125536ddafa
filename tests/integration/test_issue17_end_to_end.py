"""Issue 17, points 1 to 4, 6 and 8, end to end: run_check over real HTTP (fake Scalingo, fake Slack) with the
clock passed in, on SQLite and on DynamoDB Local."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

from backup_monitor.notifiers import ConsoleNotifier, WebhookNotifier
from backup_monitor.state.base import StateStore
from backup_monitor.state.sqlite import SqliteStateStore
from tests.fakes import FakeScalingo
from tests.fakes.slack import FakeSlack
from tests.integration.test_trust_end_to_end import MENTION, Monitor, at, nightly, slack, store

__all__ = ["slack", "store"]  # the fixtures, shared with the issue-8 end-to-end tests

NOT_FOUND = '{"resource": "database", "error": "not found"}'


def test_17_1_a_404_while_one_discovery_answer_leaves_it_out_retires_nothing(
    fake_scalingo: FakeScalingo, slack: FakeSlack, store: StateStore
) -> None:
    fake_scalingo.add_database("old", "ad-old", scheduled_hours=[1])
    nightly(fake_scalingo, "ad-old", 1, range(20, 28))
    monitor = Monitor(fake_scalingo, slack, store)
    assert monitor.check(at(27, 9))[1] == []
    # GIVEN one 404 and one discovery answer that leaves the database out WHEN checked THEN nothing is said
    fake_scalingo.fail("/api/databases/ad-old/backups", 404, NOT_FOUND)
    fake_scalingo.fail("/v1/apps/old/addons", 200, '{"addons": []}')
    summary, texts = monitor.check(at(27, 9, 15))
    assert (summary.exit_code, texts, summary.unlisted, summary.gone) == (0, [], ["old/ad-old"], [])
    # WHEN it answers again (an hour and more later) THEN it is still watched: a missed slot pages
    summary, texts = monitor.check(at(27, 10, 30))
    assert (summary.exit_code, texts, summary.checked) == (0, [], 1)
    summary, texts = monitor.check(at(28, 4, 5))
    assert texts == [f"{MENTION} Daily backup missing: old/old-1 (postgresql, osc-fr1)"]


def test_17_1_a_deletion_discovery_notices_is_said_once_and_closes_the_incidents(
    fake_scalingo: FakeScalingo, slack: FakeSlack, store: StateStore
) -> None:
    fake_scalingo.add_database("shop", "ad-shop", scheduled_hours=[1])
    nightly(fake_scalingo, "ad-shop", 1, range(20, 28))
    fake_scalingo.add_database("old", "ad-old", scheduled_hours=[1])
    nightly(fake_scalingo, "ad-old", 1, range(20, 27))
    fake_scalingo.add_backup("ad-old", at(27, 1), "error", size=None)
    monitor = Monitor(fake_scalingo, slack, store, DISCOVERY_EVERY_HOURS="1")
    _, opened = monitor.check(at(27, 9))
    assert f"{MENTION} Backup failed: old/old-10 (postgresql, osc-fr1)" in opened
    fake_scalingo.remove_app("old")
    # WHEN the hourly discovery first leaves it out THEN nothing is said yet
    summary, texts = monitor.check(at(27, 10, 5))
    assert (summary.exit_code, texts) == (0, [])
    # WHEN the next pass, more than an hour later, leaves it out again THEN it is retired: said once, closed
    summary, texts = monitor.check(at(27, 11, 10))
    assert summary.exit_code == 0
    assert summary.gone == ["old/ad-old"]
    assert sorted(texts) == [
        "Database no longer watched: old/old-10 (postgresql, osc-fr1)",
        "Resolved: backup failed: old/old-10 (postgresql, osc-fr1)",
        "Resolved: daily backup missing: old/old-10 (postgresql, osc-fr1)",
    ]
    assert monitor.check(at(27, 12, 15))[1] == []
    # WHEN it is listed again (the app restored) THEN it is watched again, with nothing old replayed
    fake_scalingo.add_database("old", "ad-old", scheduled_hours=[1])
    nightly(fake_scalingo, "ad-old", 1, range(20, 28))
    summary, texts = monitor.check(at(27, 13, 20))
    assert (summary.exit_code, summary.targets, texts) == (0, 2, []), summary.line()


def test_17_3_an_answer_omitting_the_newest_backup_does_not_page(
    fake_scalingo: FakeScalingo, slack: FakeSlack, store: StateStore
) -> None:
    fake_scalingo.add_database("shop", "ad-shop", scheduled_hours=[1])
    nightly(fake_scalingo, "ad-shop", 1, range(20, 28))
    monitor = Monitor(fake_scalingo, slack, store, SUCCESS_NOTICES="each")
    _, texts = monitor.check(at(27, 3))
    assert len(texts) == 2  # the backups of the last 48 hours, announced once
    # GIVEN the answers omit the newest backup, seen and announced an hour before, three checks in a row
    short = json.dumps({"database_backups": fake_scalingo.backups("ad-shop")[:-1]})
    fake_scalingo.fail("/api/databases/ad-shop/backups", 200, short, times=3)
    for minute in (5, 20, 35):  # after the slot's grace: "missing" would be decided now
        summary, texts = monitor.check(at(27, 4, minute))
        assert texts == [], minute
    # WHEN the full list comes back THEN nothing is announced again
    summary, texts = monitor.check(at(27, 5))
    assert (summary.exit_code, texts) == (0, [])


def test_17_3_an_empty_answer_at_first_sight_does_not_page(
    fake_scalingo: FakeScalingo, slack: FakeSlack, store: StateStore
) -> None:
    fake_scalingo.add_database("shop", "ad-shop", scheduled_hours=[1])
    nightly(fake_scalingo, "ad-shop", 1, range(20, 28))
    monitor = Monitor(fake_scalingo, slack, store)
    fake_scalingo.fail("/api/databases/ad-shop/backups", 200, '{"database_backups": []}')
    summary, texts = monitor.check(at(27, 9))
    assert (summary.exit_code, summary.unchecked, texts) == (1, ["shop/ad-shop"], [])  # a failed read
    summary, texts = monitor.check(at(27, 9, 15))
    assert (summary.exit_code, texts) == (0, [])


def test_17_2_a_rename_keeps_the_database_and_its_incidents(
    fake_scalingo: FakeScalingo, slack: FakeSlack, store: StateStore
) -> None:
    fake_scalingo.add_database("shop", "ad-shop", scheduled_hours=[1])
    nightly(fake_scalingo, "ad-shop", 1, range(20, 27))
    fake_scalingo.add_backup("ad-shop", at(27, 1), "error", size=None)
    monitor = Monitor(fake_scalingo, slack, store)
    _, opened = monitor.check(at(27, 2))
    assert opened == [f"{MENTION} Backup failed: shop/shop-1 (postgresql, osc-fr1)"]
    # GIVEN `scalingo rename` (the addon keeps its id; the old app name answers 404 once its token expires)
    fake_scalingo.rename_app("shop", "boutique")
    fake_scalingo.expire_tokens()
    summary, texts = monitor.check(at(27, 2, 15))
    # THEN it is the same database: no "no longer watched", no second page, the check succeeds
    assert (summary.exit_code, summary.gone, summary.unlisted, texts) == (0, [], [], [])
    assert summary.checked == 1
    # WHEN the next night's backup succeeds THEN the incident opened under the old name closes, under the new one
    fake_scalingo.add_backup("ad-shop", at(28, 1), size=1_000_000)
    _, texts = monitor.check(at(28, 2))
    assert texts == ["Resolved: backup failed: boutique/shop-1 (postgresql, osc-fr1)"]


def test_17_2_state_kept_under_the_app_name_by_an_older_version_keeps_working(
    fake_scalingo: FakeScalingo, slack: FakeSlack, store: StateStore, tmp_path: Path
) -> None:
    fake_scalingo.add_database("shop", "ad-shop", scheduled_hours=[1])
    nightly(fake_scalingo, "ad-shop", 1, range(20, 27))
    fake_scalingo.add_backup("ad-shop", at(27, 1), "error", size=None)
    before = SqliteStateStore(tmp_path / "before.sqlite3")
    first = Monitor(fake_scalingo, slack, before)
    assert first.check(at(27, 2))[1] == [f"{MENTION} Backup failed: shop/shop-1 (postgresql, osc-fr1)"]
    # GIVEN the state an older version kept: the same record under `region/app/addon_id`
    record = before.load_many(["osc-fr1/ad-shop"])["osc-fr1/ad-shop"]
    store.save(replace(record, key="osc-fr1/shop/ad-shop", version=0, claim_owner=None), at(27, 2).timestamp())
    upgraded = Monitor(fake_scalingo, slack, store)
    # WHEN the new version checks THEN nothing is announced again, and the record moves to the addon key
    summary, texts = upgraded.check(at(27, 2, 15))
    assert (summary.exit_code, texts) == (0, [])
    assert "failed" in store.load_many(["osc-fr1/ad-shop"])["osc-fr1/ad-shop"].incidents


def test_17_8_incidents_printed_before_slack_was_configured_reach_slack_once(
    fake_scalingo: FakeScalingo, slack: FakeSlack, store: StateStore
) -> None:
    fake_scalingo.add_database("shop", "ad-shop", scheduled_hours=[1])
    nightly(fake_scalingo, "ad-shop", 1, range(20, 27))
    fake_scalingo.add_backup("ad-shop", at(27, 1), "error", size=None)
    fake_scalingo.add_database("blog", "ad-blog", scheduled_hours=[1])
    nightly(fake_scalingo, "ad-blog", 1, range(20, 26))
    fake_scalingo.add_backup("ad-blog", at(26, 1), size=1_000_000)
    monitor = Monitor(fake_scalingo, slack, store)
    console = io.StringIO()
    monitor.clients.notifier = ConsoleNotifier(console)
    # GIVEN the first real run printed its alerts on the console (Slack not configured yet)
    summary, texts = monitor.check(at(27, 4, 30))
    assert texts == []
    assert "Backup failed" in console.getvalue()
    assert "Daily backup missing" in console.getvalue()
    # WHEN the webhook is added THEN Slack hears each open incident once, the critical ones with the mention
    monitor.clients.notifier = WebhookNotifier(slack.webhook_url)
    summary, texts = monitor.check(at(27, 4, 45))
    assert summary.exit_code == 0
    assert sorted(texts) == [
        f"{MENTION} Backup failed: shop/shop-1 (postgresql, osc-fr1)",
        f"{MENTION} Daily backup missing: blog/blog-10 (postgresql, osc-fr1)",
        "Daily backup missing: shop/shop-1 (postgresql, osc-fr1)",  # the same outage as its failure: no mention
    ]
    # THEN once only
    assert monitor.check(at(27, 5))[1] == []


def test_17_6_point_in_time_recovery_said_once_paged_when_behind_closed_when_caught_up(
    fake_scalingo: FakeScalingo, slack: FakeSlack, store: StateStore
) -> None:
    # GIVEN a PostgreSQL database relying on continuous backups: periodic dumps off, recovery window current
    fake_scalingo.add_database("ledger", "ad-ledger", periodic_backups_enabled=False)
    fake_scalingo.set_recovery_window("ad-ledger", at(20, 0), at(27, 8, 55))
    monitor = Monitor(fake_scalingo, slack, store)
    summary, texts = monitor.check(at(27, 9))
    assert summary.exit_code == 0
    assert len(texts) == 1  # "covered by point-in-time recovery", said once
    assert "ledger" in texts[0]
    assert MENTION not in texts[0]
    # WHEN a day passes THEN nothing more is said (no daily "periodic backups are switched off")
    fake_scalingo.set_recovery_window("ad-ledger", at(20, 0), at(28, 9, 50))
    assert monitor.check(at(28, 10))[1] == []
    # WHEN the latest restore point falls more than PITR_MAX_LAG_HOURS behind THEN on-call is paged once
    summary, texts = monitor.check(at(28, 16, 30))
    assert len(texts) == 1
    assert texts[0].startswith(MENTION)
    assert monitor.check(at(28, 17))[1] == []
    # WHEN the recovery window answers 404 once (a glitch) THEN it is not "no longer reported": nothing is said
    fake_scalingo.fail("/pitr/recovery_window", 404, '{"resource": "recovery_window", "error": "not found"}')
    assert monitor.check(at(28, 17, 10))[1] == []
    # WHEN it catches up THEN the incident is resolved
    fake_scalingo.set_recovery_window("ad-ledger", at(20, 0), at(28, 17, 25))
    summary, texts = monitor.check(at(28, 17, 30))
    assert len(texts) == 1
    assert texts[0].startswith("Resolved")
    assert fake_scalingo.count("db", "/pitr/recovery_window") == 6  # one request per check
