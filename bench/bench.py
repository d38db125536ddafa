"""`make bench`: how many databases one API token serves, each check a new process as in AWS.

For 200 and 2,000 databases (five per app, found by discovery) on the fake Scalingo API, with DynamoDB Local
as the state and a 15-minute schedule:

1. cold: checks every 15 minutes, each under the Lambda's time budget (900 s less the 60 s margin), until one
   leaves no database for the next;
2. quiet: one more check a minute later, in a new process: it needs no main-API request;
3. steady: checks every 15 minutes over simulated hours, tokens renewed as they come due.

The fake enforces Scalingo's 60 requests a minute on the main API and the client allows itself its default 40.
To keep `make bench` to minutes, time is scaled (`--scale-200`, `--scale-2000`; 1 = real time): the rate-limit
windows, the time budget and the tokens' clock all run `scale` times faster, so requests per check and per
hour are those of real time; work the fake and DynamoDB Local do in real time weighs `scale` times more.
A benchmark, not a test: it asserts nothing. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "functions/backup_monitor")]

PER_APP = 5
SCHEDULE = 15 * 60.0
LAMBDA_BUDGET = 900.0 - 60.0
SCALINGO_LIMIT = 60
CLIENT_LIMIT = 40


class SimClock:
    """Simulated epoch seconds: `at` when the check starts, then `scale` times faster than the wall clock."""

    def __init__(self, at: float, real: float, scale: float) -> None:
        self.at, self.real, self.scale = at, real, scale

    def __call__(self) -> float:
        return self.at + (time.time() - self.real) * self.scale


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One check in this (new) process, as a Lambda container would run it."""
    from backup_monitor.config import Settings
    from backup_monitor.monitor import Clients, run_check
    from backup_monitor.notifiers import ConsoleNotifier
    from backup_monitor.scalingo.client import ScalingoClient
    from backup_monitor.state.dynamodb import DynamoStateStore

    clock = SimClock(args.sim_at, args.real_at, args.scale)
    settings = Settings.from_env(os.environ)
    budget = max(1.0, LAMBDA_BUDGET / args.scale)
    settings = replace(settings, check_time_limit=budget)
    scalingo = ScalingoClient.from_settings(settings, clock=clock, window_seconds=60.0 / args.scale)
    store = DynamoStateStore(settings.state_table or "")
    start = time.perf_counter()
    with open(os.devnull, "w") as devnull:
        summary = run_check(
            settings, Clients(scalingo, store, ConsoleNotifier(devnull)), datetime.fromtimestamp(args.sim_at, UTC)
        )
    wall = time.perf_counter() - start
    return {
        "exit": summary.exit_code,
        "checked": summary.checked,
        "left": summary.left,
        "unchecked": len(summary.unchecked),
        "sent": summary.sent,
        "main": scalingo.main_api_requests,
        "db": scalingo.db_api_requests,
        "auth": scalingo.auth_requests,
        "backoffs": scalingo.limiter.backoffs,
        "wall_sim_s": round(wall * args.scale, 1),
        "wall_real_s": round(wall, 2),
        "after_budget_real_s": round(max(0.0, wall - budget), 2),
        "dynamodb_reads": store.reads,
        "dynamodb_writes": store.writes,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def seed(fake: Any, databases: int, now: datetime) -> None:
    """Databases with a week of daily backups; one in twenty failed its latest."""
    slot = (now - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    for i in range(databases):
        addon = f"ad-{i:05d}"
        fake.add_database(f"app-{i // PER_APP:04d}", addon, scheduled_hours=[slot.hour])
        for day in range(7, 0, -1):
            fake.add_backup(addon, slot - timedelta(days=day), size=1_000_000 + i)
        fake.add_backup(addon, slot, "error" if i % 20 == 0 else "done", size=None if i % 20 == 0 else 1_000_000 + i)
        if i % 4 == 0:  # one in four has point-in-time recovery (all are PostgreSQL: every one is asked)
            fake.set_recovery_window(addon, now - timedelta(days=7), now - timedelta(minutes=30))


def scenario(databases: int, scale: float, steady_hours: int, endpoint: str) -> dict[str, Any]:
    from backup_monitor.fakes.scalingo import FakeScalingo
    from tests.support import dynamodb_local

    os.environ.update(dynamodb_local.aws_test_env(endpoint))
    table = f"bench-{uuid.uuid4().hex[:8]}"
    dynamodb_local.create_table(endpoint, table)
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    sim_start = start.timestamp()
    clock = SimClock(sim_start, time.time(), scale)
    rows: list[dict[str, Any]] = []
    with FakeScalingo(clock=clock) as fake:
        seed(fake, databases, start)
        fake.main_rate_limit = SCALINGO_LIMIT
        fake.main_rate_window = 60.0 / scale
        env = {
            **os.environ,
            **dynamodb_local.aws_test_env(endpoint),
            "SCALINGO_API_TOKEN": fake.api_token,
            "SCALINGO_AUTH_URL": fake.url,
            "SCALINGO_API_URL": fake.region_url(),
            "SCALINGO_DB_API_URL": fake.region_url(),
            "SCALINGO_API_RATE_LIMIT": str(CLIENT_LIMIT),
            "STATE_TABLE": table,
            "MAX_WORKERS": "8",
            "DAILY_REPORT_AT": "",  # the daily report is not what this measures
            "VERIFY_ARCHIVES_EVERY_DAYS": "0",  # archives have their own benchmark (bench/archive_bench.py)
            "PYTHONPATH": str(ROOT / "functions/backup_monitor"),
        }

        def check(phase: str, at: float) -> dict[str, Any]:
            fake.reset_requests()
            real = time.time()
            clock.at, clock.real = at, real
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(at), str(real), str(scale)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            )
            row: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
            row.update(
                phase=phase,
                minute=round((at - sim_start) / 60),
                main_seen=fake.count("main"),
                db_seen=fake.count("db"),
                pitr_seen=fake.count("db", "/pitr/"),
                http_429=sum(1 for r in fake.requests if r.status == 429),
            )
            rows.append(row)
            print(f"{databases} databases: {row}", file=sys.stderr, flush=True)
            return row

        at = sim_start
        for _ in range(12):
            row = check("cold", at)
            at += SCHEDULE
            if row["left"] == 0:
                break
        check("quiet", at - SCHEDULE + 60)
        for _ in range(4 * steady_hours):
            check("steady", at)
            at += SCHEDULE
    return {"databases": databases, "scale": scale, "rows": rows, "discovery": 1 + databases // PER_APP}


def report(result: dict[str, Any]) -> str:
    n, rows = result["databases"], result["rows"]
    lines = [
        f"### {n:,} databases ({n // PER_APP} apps), time scaled x{result['scale']:g}",
        "",
        "| check | minute | databases checked | left | main-API requests | 429s | database-API requests (PITR) | "
        "wall (simulated s) | after the budget (real s) | DynamoDB reads / writes | peak RSS (MiB) | exit |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['phase']} | {row['minute']} | {row['checked']} | {row['left']} | {row['main_seen']} | "
            f"{row['http_429']} | {row['db_seen']} ({row['pitr_seen']}) | {row['wall_sim_s']} | "
            f"{row['after_budget_real_s']} | "
            f"{row['dynamodb_reads']} / {row['dynamodb_writes']} | "
            f"{row['peak_rss_mib']} | {row['exit']} |"
        )
    cold = [r for r in rows if r["phase"] == "cold"]
    steady = [r for r in rows if r["phase"] == "steady"]
    lines.append("")
    lines.append(
        f"- cold: {len(cold)} check(s) until every database was reached, {sum(r['main_seen'] for r in cold):,} "
        f"main-API requests (discovery: {result['discovery']:,} of them)"
    )
    discovery_per_hour = result["discovery"] / 6
    for hour in range(len(steady) // 4):
        part = steady[4 * hour : 4 * hour + 4]
        per_hour = sum(r["main_seen"] for r in part)
        with_discovery = per_hour + discovery_per_hour
        lines.append(
            f"- steady hour {hour + 1}: {per_hour:,} main-API requests ({per_hour / n:.2f} per database), "
            f"{with_discovery:,.0f} with discovery every 6 h = {100 * with_discovery / (SCALINGO_LIMIT * 60):.0f} % "
            f"of 60 a minute; per check at most {max(r['main_seen'] for r in part)}; 429s: "
            f"{sum(r['http_429'] for r in part)}; databases left by a check: at most {max(r['left'] for r in part)}; "
            f"database API: {sum(r['db_seen'] for r in part):,} requests, of which point-in-time recovery "
            f"{sum(r['pitr_seen'] for r in part):,} ({sum(r['pitr_seen'] for r in part) / n:.2f} per database)"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=3, type=float, metavar=("SIM_AT", "REAL_AT", "SCALE"))
    parser.add_argument("--scale-200", type=float, default=10.0, help="time scale for 200 databases (1 = real)")
    parser.add_argument("--scale-2000", type=float, default=20.0, help="time scale for 2,000 databases")
    parser.add_argument("--steady-hours", type=int, default=2)
    parser.add_argument("--only", type=int, choices=(200, 2000))
    args = parser.parse_args()
    if args.child:
        sim_at, real_at, scale = args.child
        print(json.dumps(child(argparse.Namespace(sim_at=sim_at, real_at=real_at, scale=scale))))
        return 0
    from tests.support import dynamodb_local

    local = dynamodb_local.start()
    results = []
    started = time.perf_counter()
    try:
        for databases, scale in ((200, args.scale_200), (2000, args.scale_2000)):
            if args.only in (None, databases):
                results.append(scenario(databases, scale, args.steady_hours, local.endpoint))
    finally:
        local.stop()
    print(
        f"Fake Scalingo: {SCALINGO_LIMIT} main-API requests a minute; client: SCALINGO_API_RATE_LIMIT={CLIENT_LIMIT}, "
        f"MAX_WORKERS=8; a check every 15 minutes, each a new process with the Lambda's budget "
        f"({LAMBDA_BUDGET:.0f} s); DynamoDB Local. Run time {time.perf_counter() - started:.0f} s.\n"
    )
    print("\n\n".join(report(r) for r in results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
