"""`make bench`, the bad night: a storm of failures, and how soon an alert reaches Slack in a big fleet.

1. Storm: 300 databases whose backups failed the same night (their addon tokens cached by the previous check,
   as on any night), one check, a fake Slack that enforces Slack's one message a second per channel with
   429 + Retry-After (1 s): messages, mentions, 429s and seconds, through a webhook and through a bot.
2. Alerts first: 200 and 2,000 databases, a quarter of them needing a new addon token (the hourly renewal
   wave: they wait on the main API's 40 requests a minute), and one failure on a database whose token is
   cached, sorted last: the time from the check's start to Slack receiving that alert.

Real time, loopback only, DynamoDB Local as the state; the fake Scalingo API enforces 60 main-API requests a
minute. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "functions/backup_monitor")]

from backup_monitor.config import Settings  # noqa: E402
from backup_monitor.fakes.scalingo import FakeScalingo  # noqa: E402
from backup_monitor.monitor import Clients, run_check  # noqa: E402
from backup_monitor.notifiers import BotNotifier, Notifier, WebhookNotifier  # noqa: E402
from backup_monitor.scalingo.client import ScalingoClient  # noqa: E402
from backup_monitor.state.dynamodb import DynamoStateStore  # noqa: E402
from tests.fakes.slack import FakeSlack  # noqa: E402
from tests.support import dynamodb_local  # noqa: E402

CHANNEL = "C0BACKUPS"
NOW = datetime.now(UTC).replace(microsecond=0)


def seed(fake: FakeScalingo, count: int, prefix: str, *, failed: bool) -> list[str]:
    slot = (NOW - timedelta(hours=2)).replace(minute=0, second=0)
    apps = []
    for i in range(count):
        app, addon = f"{prefix}-{i:05d}", f"ad-{prefix}-{i:05d}"
        fake.add_database(app, addon, scheduled_hours=[slot.hour])
        for day in range(7, 0, -1):
            fake.add_backup(addon, slot - timedelta(days=day), size=10_000_000)
        if failed:
            fake.add_backup(addon, slot, "error", size=None)
        apps.append(app)
    return apps


def settings_for(fake: FakeScalingo, table: str, **extra: str) -> Settings:
    env = {
        "SCALINGO_API_TOKEN": fake.api_token,
        "SCALINGO_AUTH_URL": fake.url,
        "SCALINGO_API_URL": fake.region_url(),
        "SCALINGO_DB_API_URL": fake.region_url(),
        "STATE_TABLE": table,
        "SLACK_MENTION": "<!here>",
        "SUCCESS_NOTICES": "off",
        "MISSING_BACKUP_GRACE_HOURS": "12",
        "VERIFY_ARCHIVES_EVERY_DAYS": "0",
        "DAILY_REPORT_AT": "",
        "EXCLUDE_APPS": "",
        **extra,
    }
    return Settings.from_env(env)


def check(settings: Settings, notifier: Notifier, **kwargs: Any) -> tuple[Any, float, float]:
    """One check with a new client (tokens from the store, as a new container): summary, start, seconds."""
    scalingo = ScalingoClient.from_settings(settings)
    store = DynamoStateStore(settings.state_table or "")
    started = time.monotonic()
    summary = run_check(settings, Clients(scalingo, store, notifier), NOW, **kwargs)
    return summary, started, time.monotonic() - started


def new_table(endpoint: str) -> str:
    table = f"bench-{uuid.uuid4().hex[:8]}"
    dynamodb_local.create_table(endpoint, table)
    return table


def storm(endpoint: str, kind: str) -> dict[str, Any]:
    with FakeScalingo() as fake, FakeSlack(rate_per_channel=1.0, retry_after=1.0) as slack:
        table = new_table(endpoint)
        apps = seed(fake, 300, "shop", failed=False)
        quiet = settings_for(fake, table, SCALINGO_API_RATE_LIMIT="100000")
        check(quiet, WebhookNotifier(slack.webhook_url))  # the night before: tokens cached, nothing to say
        slack.calls.clear()
        slot = (NOW - timedelta(hours=2)).replace(minute=0, second=0)
        for app in apps:
            fake.add_backup(f"ad-{app}", slot + timedelta(minutes=1), "error", size=None)
        extra = {"SLACK_BOT_TOKEN": slack.bot_token, "SLACK_CHANNEL": CHANNEL} if kind == "bot" else {}
        settings = settings_for(fake, table, SCALINGO_API_RATE_LIMIT="40", **extra)
        notifier: Notifier = (
            BotNotifier(slack.bot_token, CHANNEL, base_url=slack.api_url)
            if kind == "bot"
            else WebhookNotifier(slack.webhook_url)
        )
        summary, _, seconds = check(settings, notifier)
        posted = [json.dumps(m) for m in slack.messages()]
        return {
            "kind": kind,
            "failures": summary.findings.get("failed", 0),
            "messages": len(posted),
            "mentions": slack.mentions(),
            "named": sum(1 for app in apps if any(f"*{app}*" in m for m in posted)),
            "http_429": slack.rate_limited(),
            "seconds": round(seconds, 1),
            "exit": summary.exit_code,
        }


def alerts_first(endpoint: str, databases: int, budget: float) -> dict[str, Any]:
    renewing = databases // 4
    with FakeScalingo() as fake, FakeSlack(rate_per_channel=1.0, retry_after=1.0) as slack:
        table = new_table(endpoint)
        cached = seed(fake, databases - renewing, "cached", failed=False)
        named = ",".join(f"{app}/ad-{app}" for app in cached)
        warm = settings_for(fake, table, SCALINGO_API_RATE_LIMIT="100000", MAX_WORKERS="16", MONITORED_DATABASES=named)
        check(warm, WebhookNotifier(slack.webhook_url))  # tokens cached for these
        # the renewal wave: databases whose token must be fetched, on the main API's 40 a minute
        renew = seed(fake, renewing, "renewing", failed=False)
        named += "," + ",".join(f"{app}/ad-{app}" for app in renew)
        fake.main_rate_limit = 60
        fake.main_rate_window = 60.0
        # one failure on a database whose token is cached, sorted last among them
        last = f"cached-{databases - renewing - 1:05d}"
        slot = (NOW - timedelta(hours=2)).replace(minute=0, second=0)
        fake.add_backup(f"ad-{last}", slot + timedelta(minutes=1), "error", size=None)
        slack.calls.clear()
        settings = replace(
            settings_for(fake, table, SCALINGO_API_RATE_LIMIT="40", MONITORED_DATABASES=named),
            check_time_limit=budget,
        )
        summary, started, seconds = check(settings, WebhookNotifier(slack.webhook_url))
        arrived = [c.received_at for c in slack.calls if c.status == 200 and f"*{last}*" in json.dumps(c.body)]
        return {
            "databases": databases,
            "needing_a_token": renewing,
            "alert_after_s": round(arrived[0] - started, 1) if arrived else None,
            "check_s": round(seconds, 1),
            "checked": summary.checked,
            "left": summary.left,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=120.0, help="the alerts-first check's time budget (s)")
    args = parser.parse_args()
    local = dynamodb_local.start()
    os.environ.update(dynamodb_local.aws_test_env(local.endpoint))
    started = time.perf_counter()
    try:
        storms = [storm(local.endpoint, kind) for kind in ("webhook", "bot")]
        firsts = [alerts_first(local.endpoint, n, args.budget) for n in (200, 2000)]
    finally:
        local.stop()
    print(f"\n### A storm: 300 failures in one check (run time {time.perf_counter() - started:.0f} s)\n")
    print("| Slack | failures | messages | mentions | databases named | 429s | seconds | exit |")
    print("|---|---|---|---|---|---|---|---|")
    for r in storms:
        print(
            f"| {r['kind']} | {r['failures']} | {r['messages']} | {r['mentions']} | {r['named']} | "
            f"{r['http_429']} | {r['seconds']} | {r['exit']} |"
        )
    print("\n### Alerts first: a cached-token failure, sorted last, while a quarter of the fleet renews tokens\n")
    print("| databases | needing a token | alert in Slack after (s) | check (s, budget) | checked | left |")
    print("|---|---|---|---|---|---|")
    for r in firsts:
        print(
            f"| {r['databases']:,} | {r['needing_a_token']:,} | {r['alert_after_s']} | {r['check_s']} "
            f"({args.budget:g}) | {r['checked']} | {r['left']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
