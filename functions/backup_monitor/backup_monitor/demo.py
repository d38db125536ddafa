"""`backup-monitor demo`: a small fleet on the fake Scalingo API, six checks, alerts on the console."""

from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from backup_monitor.config import Settings, Target
from backup_monitor.fakes.archives import small_archive
from backup_monitor.fakes.scalingo import FakeScalingo
from backup_monitor.monitor import Clients, run_check
from backup_monitor.notifiers import ConsoleNotifier
from backup_monitor.scalingo.client import ScalingoClient
from backup_monitor.state.sqlite import SqliteStateStore

GB = 1024**3


def seed(fake: FakeScalingo, now: datetime) -> None:
    """Seven databases, each with a story (the tests' fleet; the demo adds two with point-in-time recovery)."""
    slot = (now - timedelta(hours=5)).replace(minute=0, second=0, microsecond=0)  # today's backup hour, 5 h ago
    hour = slot.hour

    def history(addon: str, size: int, days: int = 7, skip_today: bool = False) -> None:
        for day in range(days, 0 if skip_today else -1, -1):
            if day == 0 and skip_today:
                continue
            fake.add_backup(addon, slot - timedelta(days=day), size=size + day * 1_000_000)

    fake.add_database("shop-prod", "ad-shop", provider="postgresql", scheduled_hours=[hour])
    history("ad-shop", int(1.2 * GB), days=7)

    fake.add_database("billing", "ad-billing", provider="mysql", scheduled_hours=[hour])
    history("ad-billing", int(0.4 * GB), days=7, skip_today=True)
    fake.add_backup("ad-billing", slot, "error", size=None)

    fake.add_database("blog", "ad-blog", provider="postgresql", scheduled_hours=[hour])
    history("ad-blog", 80_000_000, days=7, skip_today=True)

    stuck_slot = slot - timedelta(hours=4)
    fake.add_database("analytics", "ad-analytics", provider="mongodb", scheduled_hours=[stuck_slot.hour])
    for day in range(7, 0, -1):
        fake.add_backup("ad-analytics", stuck_slot - timedelta(days=day), size=3 * GB)
    fake.add_backup("ad-analytics", stuck_slot, "running", size=None)

    fake.add_database("crm", "ad-crm", provider="postgresql", scheduled_hours=[hour])
    history("ad-crm", 600_000_000, days=7, skip_today=True)
    fake.add_backup("ad-crm", slot, size=41_000_000)  # a "successful" dump that lost most of its data

    fake.add_database("sessions", "ad-sessions", provider="redis", periodic_backups_enabled=False)
    fake.add_backup("ad-sessions", now - timedelta(days=20), size=5_000_000)

    fake.add_other_addon("shop-prod", "ad-mail", "mailjet")  # not a database: discovery skips it

    # A review app (`<parent>-pr<number>`) whose database never had a backup: EXCLUDE_APPS leaves it out.
    fake.add_database("shop-prod-pr42", "ad-review", provider="postgresql", scheduled_hours=[hour])


def seed_pitr(fake: FakeScalingo, now: datetime) -> None:
    """PostgreSQL's continuous backups (point-in-time recovery): dumps off on purpose, and a lagging one."""
    slot = (now - timedelta(hours=5)).replace(minute=0, second=0, microsecond=0)
    fake.add_database("payments", "ad-payments", provider="postgresql", periodic_backups_enabled=False)
    fake.set_recovery_window("ad-payments", now - timedelta(days=7), now - timedelta(minutes=5))
    fake.add_database("orders", "ad-orders", provider="postgresql", scheduled_hours=[slot.hour])
    for day in range(7, -1, -1):
        fake.add_backup("ad-orders", slot - timedelta(days=day), size=900_000_000 + day * 1_000_000)
    fake.set_recovery_window("ad-orders", now - timedelta(days=7), now - timedelta(hours=9))


def seed_archives(fake: FakeScalingo, now: datetime) -> tuple[Target, ...]:
    """Two databases whose backups can be downloaded: one sound archive, one with a flipped byte."""
    created = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    names = []
    for app, addon, corrupt in (("wiki", "ad-wiki", False), ("ledger", "ad-ledger", True)):
        fake.add_database(app, addon, provider="postgresql", scheduled_hours=[created.hour])
        backup = fake.add_backup(addon, created, size=0)
        archive = small_archive("postgresql", str(backup["name"]), corrupt=corrupt)
        backup["size"] = len(archive)
        fake.set_archive(backup["id"], archive)
        names.append(Target("osc-fr1", app, addon))
    return tuple(names)


def seed_storm(fake: FakeScalingo, now: datetime) -> tuple[Target, ...]:
    """Thirty databases of one fleet whose backups all failed in the same slot (a Scalingo-side incident)."""
    slot = (now - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    targets = []
    for i in range(30):
        app, addon = f"shop-eu-{i:02d}", f"ad-shop-eu-{i:02d}"
        fake.add_database(app, addon, provider="postgresql", scheduled_hours=[slot.hour])
        for day in range(7, 0, -1):
            fake.add_backup(addon, slot - timedelta(days=day), size=200_000_000)
        fake.add_backup(addon, slot, "error", size=None)
        targets.append(Target("osc-fr1", app, addon))
    return tuple(targets)


def banner(text: str) -> None:
    print(f"\n{'=' * 100}\n{text}\n{'=' * 100}\n", flush=True)


def run_demo() -> int:
    """The whole story offline. Returns 0 when every step behaved as told."""
    now = datetime.now(UTC).replace(microsecond=0)
    with FakeScalingo() as fake, tempfile.TemporaryDirectory() as folder:
        seed(fake, now)
        seed_pitr(fake, now)
        settings = Settings.from_env(
            {
                "SCALINGO_API_TOKEN": fake.api_token,
                "SCALINGO_AUTH_URL": fake.url,
                "SCALINGO_API_URL": fake.region_url(),
                "SCALINGO_DB_API_URL": fake.region_url(),
                "STATE_PATH": str(Path(folder) / "state.sqlite3"),
                "SCALINGO_API_RATE_LIMIT": "600",
                "VERIFY_ARCHIVES_EVERY_DAYS": "0",  # on in check 6, for the two databases that serve archives
                "DAILY_REPORT_AT": f"{now:%H:%M} UTC",  # so the first check shows the daily report
                # Every database at every check, so each step of the story shows at once; check 12 shows the
                # default cadence (a database is read when it can have news).
                "SWEEP_EVERY_HOURS": "0",
            }
        )
        clients = Clients(
            ScalingoClient.from_settings(settings), SqliteStateStore(settings.state_path), ConsoleNotifier()
        )
        print(
            "backup-monitor demo: a fake Scalingo API runs on this machine with nine databases and one e-mail addon.\n"
            "Nothing leaves this machine: alerts are printed here instead of going to Slack.\n"
            "  shop-prod  healthy daily backups             billing    today's backup failed\n"
            "  blog       today's backup never happened   analytics  a backup running for 9 hours\n"
            "  crm        today's dump is 93% smaller     sessions   periodic backups switched off\n"
            "  payments   dumps off, point-in-time recovery current: said once\n"
            "  orders     point-in-time recovery 9 hours behind (its latest restore point)\n"
            "  shop-prod-pr42  a review app, never backed up: excluded by default (EXCLUDE_APPS)\n"
            "A database pages once per outage: when a failed backup also leaves its slot without a usable\n"
            "backup, the second message carries no mention. Later, a storm of 30 failures is one message, and\n"
            "Scalingo's API failing for every database is one incident."
        )
        banner("Check 1 - first sight: every problem is announced, successes in one digest, then the daily report")
        first = run_check(settings, clients, now)
        print(f"summary: {first.line()}")

        banner("Check 2 - fifteen minutes later, nothing changed: nothing is said again")
        second = run_check(settings, clients, now + timedelta(minutes=15))
        print(f"summary: {second.line()}")

        banner("Check 3 - a manual backup of shop-prod just failed: only that is announced")
        fake.add_backup("ad-shop", now + timedelta(minutes=20), "error", size=None, method="manual")
        third = run_check(settings, clients, now + timedelta(minutes=30))
        print(f"summary: {third.line()}")

        banner("Check 4 - the blog app was deleted: a 404 alone retires nothing, discovery leaving it out is pending")
        fake.remove_app("blog")
        fourth = run_check(settings, clients, now + timedelta(minutes=45))
        print(f"summary: {fourth.line()}")
        banner(
            "Check 5 - an hour later discovery still leaves it out: said once, its incident closed, then never again"
        )
        fifth = run_check(settings, clients, now + timedelta(hours=1, minutes=50))
        print(f"summary: {fifth.line()}")
        banner("Check 6 - archive verification: two new databases' archives are downloaded as a stream and checked")
        archived = seed_archives(fake, now)
        sixth = run_check(
            replace(settings, verify_archives_every_days=7.0, monitored=archived), clients, now + timedelta(hours=2)
        )
        print(f"summary: {sixth.line()}")

        banner("Check 7 - a Scalingo-side night: 30 more databases' backups all failed: one message, one mention")
        storm = seed_storm(fake, now + timedelta(hours=3))
        quiet_successes = replace(settings.policy, success_notices="off")
        paging = replace(settings, monitored=storm, slack_mention="<!here>", policy=quiet_successes)
        seventh = run_check(paging, clients, now + timedelta(hours=3))
        print(f"summary: {seventh.line()}")

        banner("Checks 8 to 11 - Scalingo's database API fails for every database: one incident, then it clears")
        fake.fail("/backups", 500, times=1_000_000)
        outage = [run_check(paging, clients, now + timedelta(hours=3, minutes=15 * i)) for i in range(1, 4)]
        for number, summary in enumerate(outage, start=8):
            print(f"summary of check {number}: {summary.line()}")
        fake.faults.clear()
        cleared = run_check(paging, clients, now + timedelta(hours=4))
        print(f"summary of check 11: {cleared.line()}")

        banner(
            "Check 12 - the default cadence (SWEEP_EVERY_HOURS=6): only the databases that can have news are read\n"
            "(an open incident, a backup slot not yet filled, a sweep due); the others cost no request"
        )
        before = len(fake.requests)
        cadence = run_check(replace(settings, sweep_every_hours=6.0), clients, now + timedelta(hours=4, minutes=15))
        print(f"summary of check 12: {cadence.line()}")
        print(f"requests to the fake API in check 12: {len(fake.requests) - before}")

        requests = len(fake.requests)
        print(
            f"\nThe fake API saw {requests} requests in all. State lives in DynamoDB in AWS, in SQLite here.\n"
            "Next: `make test`, then docs/deploying.md (backup-monitor secrets put, then make deploy)."
        )
    story_holds = (
        first.sent > 0
        and second.sent == 0
        and third.sent == 1
        and first.findings["pitr_behind"] == 1
        and first.findings["pitr_only"] == 1
        and fourth.sent == 0
        and fourth.unlisted == ["blog/ad-blog"]
        and fifth.gone == ["blog/ad-blog"]
        and fifth.ok
        and sixth.findings["archive_unreadable"] == 1
        and seventh.findings["failed"] == 30
        and seventh.sent <= 2
        and [o.sent for o in outage] == [0, 0, 1]
        and outage[-1].held > 0
        and cleared.sent == 1
        and cadence.not_due > 0
        and cadence.ok
    )
    if not story_holds:
        print("demo: the story did not go as told; this is a bug", file=sys.stderr)
    return 0 if story_holds else 1
