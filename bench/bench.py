"""`make bench`: 200 databases on the fake Scalingo API (50 ms per request, main API limited to 600/min).

For MAX_WORKERS=1 and the default (8), a cold check then a quiet one, with DynamoDB Local as the state.
Reports wall time against the floors set by the rate limit and by latency, requests per database on each
API, 429s, DynamoDB reads and writes, and peak RSS. A benchmark, not a test: it asserts nothing about time.
Each configuration runs in its own process so peak memory is its own. Loopback only.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "functions/backup_monitor")]

DATABASES = 200
APPS = 40
LATENCY = 0.05
RATE = 600


def one(workers: int, endpoint: str) -> dict[str, Any]:
    from backup_monitor.config import Settings
    from backup_monitor.fakes.scalingo import FakeScalingo
    from backup_monitor.monitor import Clients, run_check
    from backup_monitor.notifiers import ConsoleNotifier
    from backup_monitor.scalingo.client import ScalingoClient
    from backup_monitor.state.dynamodb import DynamoStateStore
    from tests.support import dynamodb_local

    os.environ.update(dynamodb_local.aws_test_env(endpoint))
    table = f"bench-{uuid.uuid4().hex[:8]}"
    dynamodb_local.create_table(endpoint, table)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    results: dict[str, Any] = {"workers": workers}
    with FakeScalingo() as fake, open(os.devnull, "w") as devnull:
        for i in range(DATABASES):
            addon = f"ad-{i:04d}"
            fake.add_database(f"app-{i % APPS:03d}", addon, scheduled_hours=[(now.hour - 2) % 24])
            for day in range(1, 9):
                fake.add_backup(addon, now - timedelta(days=day, hours=2), size=1_000_000 + i)
            if i % 20 == 0:
                fake.add_backup(addon, now - timedelta(hours=2), "error", size=None)
            else:
                fake.add_backup(addon, now - timedelta(hours=2), size=1_000_000 + i)
        fake.latency = LATENCY
        fake.main_rate_limit = RATE
        settings = Settings.from_env(
            {
                "SCALINGO_API_TOKEN": fake.api_token,
                "SCALINGO_AUTH_URL": fake.url,
                "SCALINGO_API_URL": fake.region_url(),
                "SCALINGO_DB_API_URL": fake.region_url(),
                "SCALINGO_API_RATE_LIMIT": str(RATE),
                "MAX_WORKERS": str(workers),
                "STATE_TABLE": table,
                "DAILY_REPORT_AT": "",
            }
        )
        store = DynamoStateStore(table)
        clients = Clients(ScalingoClient.from_settings(settings), store, ConsoleNotifier(devnull))
        for phase, at in (("cold", now), ("quiet", now + timedelta(minutes=15))):
            fake.reset_requests()
            store.reads = store.writes = 0
            start = time.perf_counter()
            summary = run_check(settings, clients, at)
            wall = time.perf_counter() - start
            main = fake.count("main")
            db = fake.count("db")
            rate_floor = main / (RATE / 60)
            latency_floor = db * LATENCY / workers
            results[phase] = {
                "wall_s": round(wall, 2),
                "rate_floor_s": round(rate_floor, 2),
                "latency_floor_s": round(latency_floor, 2),
                "ratio_to_floor": round(wall / max(rate_floor, latency_floor, 1e-9), 2),
                "main_per_db": round(main / DATABASES, 3),
                "db_per_db": round(db / DATABASES, 3),
                "auth_requests": fake.count("auth"),
                "http_429": sum(1 for r in fake.requests if r.status == 429),
                "dynamodb_reads": store.reads,
                "dynamodb_writes": store.writes,
                "checked": summary.checked,
                "messages": summary.sent,
            }
    results["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return results


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| workers | check | wall (s) | rate floor (s) | latency floor (s) | wall / floor | main API req/db | "
        "db API req/db | 429s | DynamoDB reads | DynamoDB writes | peak RSS (MiB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        for phase in ("cold", "quiet"):
            r = row[phase]
            lines.append(
                f"| {row['workers']} | {phase} | {r['wall_s']} | {r['rate_floor_s']} | {r['latency_floor_s']} | "
                f"{r['ratio_to_floor']} | {r['main_per_db']} | {r['db_per_db']} | {r['http_429']} | "
                f"{r['dynamodb_reads']} | {r['dynamodb_writes']} | {row['peak_rss_mib']} |"
            )
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        print(json.dumps(one(int(sys.argv[2]), sys.argv[3])))
        return 0
    from tests.support import dynamodb_local

    local = dynamodb_local.start()
    rows = []
    try:
        for workers in (1, 8):
            out = subprocess.run(
                [sys.executable, __file__, "--one", str(workers), local.endpoint],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"workers={workers}: {rows[-1]}", file=sys.stderr, flush=True)
    finally:
        local.stop()
    print(
        f"{DATABASES} databases, {LATENCY * 1000:.0f} ms per request, main API limited to {RATE}/min "
        "(fake and client), DynamoDB Local\n"
    )
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
