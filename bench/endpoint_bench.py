"""`make bench`, the Slack endpoint: how long `backup-monitor serve` (a subprocess, SQLite state) takes to
answer a signed click on loopback, Acknowledge and Get download link, each a few hundred times; median and p99
against Slack's 3 seconds. The fake Scalingo API makes the links (each click a fresh one), the fake Slack takes
the response_url posts (they are inside the measured time: the endpoint answers after them).

A benchmark, not a test: nothing here asserts a time. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "functions/backup_monitor")]

from backup_monitor.fakes.scalingo import FakeScalingo  # noqa: E402
from backup_monitor.interactions_ui import ACTION_ACK, ACTION_DOWNLOAD, ButtonValue  # noqa: E402
from backup_monitor.monitor import Clients, run_check  # noqa: E402
from backup_monitor.notifiers import BotNotifier  # noqa: E402
from backup_monitor.scalingo.client import ScalingoClient  # noqa: E402
from backup_monitor.state.sqlite import SqliteStateStore  # noqa: E402
from tests.fakes.slack import FakeSlack  # noqa: E402
from tests.support.interactions import SECRET, click_body, post, serving, signed_headers  # noqa: E402
from tests.support.processes import clean_env, scalingo_env  # noqa: E402

KEY = "osc-fr1/ad-bench"
BACKUP = "bk-bench"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300, help="signed clicks per action (default 300)")
    args = parser.parse_args()
    now = datetime.now(UTC).replace(microsecond=0)
    with FakeScalingo() as fake, FakeSlack() as slack, tempfile.TemporaryDirectory() as tmp:
        fake.add_database("bench", "ad-bench", scheduled_hours=[(now - timedelta(hours=1)).hour])
        fake.add_backup("ad-bench", now - timedelta(hours=1), size=10**9, backup_id=BACKUP)
        fake.add_backup("ad-bench", now - timedelta(minutes=10), "error", size=0)
        env = {
            **scalingo_env(fake),
            "SCALINGO_API_RATE_LIMIT": "6000",
            "VERIFY_ARCHIVES_EVERY_DAYS": "0",
            "DAILY_REPORT_AT": "",
            "STATE_PATH": str(Path(tmp) / "state.sqlite3"),
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_CHANNEL": "C0BENCH",
            "SLACK_API_URL": slack.api_url,
        }
        from backup_monitor.config import Settings

        settings = Settings.from_env(env)
        store = SqliteStateStore(env["STATE_PATH"])
        notifier = BotNotifier(slack.bot_token, "C0BENCH", base_url=slack.api_url)
        summary = run_check(settings, Clients(ScalingoClient.from_settings(settings), store, notifier), now)
        assert summary.exit_code == 0, summary.line()
        figures: dict[str, dict[str, float]] = {}
        with serving({**clean_env(), **env, "SLACK_SIGNING_SECRET": SECRET}) as url:
            for name, action, value in (
                ("acknowledge", ACTION_ACK, ButtonValue(KEY, incident="failed")),
                ("download", ACTION_DOWNLOAD, ButtonValue(KEY, backup=BACKUP)),
            ):
                times: list[float] = []
                for i in range(args.requests + 5):
                    body = click_body(action, value.encode(), slack.response_url(f"{name}-{i}"), user=f"U0B{i:05d}")
                    headers = signed_headers(body)
                    started = time.perf_counter()
                    status, _ = post(url, body, headers)
                    took = time.perf_counter() - started
                    assert status == 200, status
                    if i >= 5:  # the first few warm the process (imports, the Scalingo tokens)
                        times.append(took * 1000)
                answered = sum(1 for path, _ in slack.all_responses() if path.startswith(f"{name}-"))
                figures[name] = {
                    "requests": len(times),
                    "median_ms": round(statistics.median(times), 1),
                    "p99_ms": round(percentile(times, 0.99), 1),
                    "max_ms": round(max(times), 1),
                    "answered": answered,
                }
        for name, figure in figures.items():
            print(
                f"endpoint {name}: {figure['requests']} signed requests, median {figure['median_ms']} ms, "
                f"p99 {figure['p99_ms']} ms, max {figure['max_ms']} ms (Slack waits 3,000 ms)"
            )
        print(json.dumps({"endpoint": figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
