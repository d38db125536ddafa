"""`make bench`: how many databases one API token serves "like production", each check a new process as in AWS.

Scenarios (`--only NAME`), each on a fresh DynamoDB Local table, its databases found by discovery on the fake
Scalingo API: `200` (5 per app), `2000` (5 per app), `10000` (5 per app, 2,000 apps) and `2000x1` (2,000 apps
of one database each). Each runs checks every 15 simulated minutes, each a new process with the Lambda's
budget (900 s less the 60 s margin), from a cold start (empty table) through first coverage (every database
read at least once; at most `--cold-hours`), then a steady period (`--steady-hours`; 24 h but for 10000)
with DISCOVERY_EVERY_HOURS=6 (rediscoveries inside the run), SWEEP_EVERY_HOURS=6 and
MISSING_BACKUP_GRACE_HOURS=3.

The world moves meanwhile (bench/fleet.py): every database has one daily backup slot (spread over the day;
30 % of the fleet on one hour, two hours after the cold-start cap), and as the simulated clock reaches a slot
the parent process adds its backup to the fake, "running" then "done"; about 1 % end "error" and about 1 % of
the slots get no backup at all; one database in five has a point-in-time recovery window that advances.

Measured per check and per scenario: checks to first coverage; main-API requests per database-hour in the
steady part; the share of Scalingo's 60 requests a minute (hourly average, busiest hour, busiest minute, on
the simulated clock); 429s; how late failed backups (from their `created_at`) and missing ones (from slot
plus grace) were opened as incidents (as written to the state table by the child), p50 and worst; the child's
exit status, summary fields (checked, left, due, not due, oldest due), peak RSS and DynamoDB requests.
A Markdown report goes to standard output, progress to standard error.

The fake enforces Scalingo's 60 requests a minute on the main API and the client allows itself its default 40.
To keep the run to minutes, time is scaled (`--scale`; 1 = real time): the rate-limit windows, the budget,
the group wait and the tokens' clock run `scale` times faster, so requests per check and per hour are those of
real time; the real-time work of the check, the fake and DynamoDB Local weighs `scale` times more.
A benchmark, not a test: it asserts nothing. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "functions/backup_monitor")]

from backup_monitor.records import Record  # noqa: E402
from backup_monitor.state.base import CLAIM_SECONDS  # noqa: E402
from backup_monitor.state.dynamodb import DynamoStateStore  # noqa: E402
from bench.fleet import (  # noqa: E402
    REGION,
    Detection,
    Mover,
    Opened,
    SimClock,
    Traffic,
    World,
    detection,
    make_fleet,
)

SCHEDULE = 15 * 60.0
LAMBDA_BUDGET = 900.0 - 60.0
SCALINGO_LIMIT = 60
CLIENT_LIMIT = 40
GRACE_HOURS = 3.0
GROUP_WAIT = 10.0  # GROUP_WAIT_SECONDS' default, scaled like the rest


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    databases: int
    per_app: int
    scale: float  # simulated seconds per real second
    steady_hours: float
    cold_hours: float  # at most this long to reach first coverage; the steady period starts then regardless

    @property
    def apps(self) -> int:
        return -(-self.databases // self.per_app)


SCENARIOS = (
    Scenario("200", 200, 5, scale=20, steady_hours=24, cold_hours=6),
    Scenario("2000", 2000, 5, scale=20, steady_hours=24, cold_hours=6),
    Scenario("10000", 10_000, 5, scale=40, steady_hours=8, cold_hours=8),
    Scenario("2000x1", 2000, 1, scale=40, steady_hours=24, cold_hours=6),
)


# -- the child: one check in a new process ---------------------------------------------------------------------


class WatchedStore(DynamoStateStore):
    """The DynamoDB store, noting the incidents opened since `since` in every record it writes."""

    def __init__(self, table: str, since: datetime) -> None:
        super().__init__(table)
        self.since = since
        self.opened: dict[tuple[str, str, str], dict[str, Any]] = {}

    def _note(self, record: Record) -> None:
        for key, incident in record.incidents.items():
            if incident.opened_at >= self.since:
                self.opened.setdefault(
                    (record.key, key, incident.opened_at.isoformat()),
                    {
                        "key": record.key,
                        "incident": key,
                        "kind": incident.kind,
                        "opened_at": incident.opened_at.isoformat(),
                        "slot": incident.slot.isoformat() if incident.slot else None,
                        "backup_id": incident.backup_id,
                    },
                )

    def save(self, record: Record, now: float) -> Record:
        saved = super().save(record, now)
        self._note(record)
        return saved

    def commit(
        self, record: Record, owner: str, now: float, *, release: bool = True, ttl: float = CLAIM_SECONDS
    ) -> Record:
        saved = super().commit(record, owner, now, release=release, ttl=ttl)
        self._note(record)
        return saved


def child(sim_at: float, real_at: float, scale: float) -> dict[str, Any]:
    """One check in this (new) process, as a Lambda container would run it."""
    from backup_monitor.config import Settings
    from backup_monitor.monitor import Clients, run_check
    from backup_monitor.notifiers import ConsoleNotifier
    from backup_monitor.scalingo.client import ScalingoClient

    clock = SimClock(sim_at, real_at, scale)
    now = datetime.fromtimestamp(sim_at, UTC)
    settings = Settings.from_env(os.environ)
    budget = max(1.0, LAMBDA_BUDGET / scale)
    settings = replace(settings, check_time_limit=budget)
    scalingo = ScalingoClient.from_settings(settings, clock=clock, window_seconds=60.0 / scale)
    store = WatchedStore(settings.state_table or "", now)
    startup = time.time() - real_at
    start = time.perf_counter()
    with open(os.devnull, "w") as devnull:
        summary = run_check(settings, Clients(scalingo, store, ConsoleNotifier(devnull)), now)
    wall = time.perf_counter() - start
    oldest = getattr(summary, "oldest_due_minutes", None)
    return {
        "exit": summary.exit_code,
        "checked": summary.checked,
        "left": summary.left,
        "due": getattr(summary, "due", None),
        "not_due": getattr(summary, "not_due", None),
        "oldest_due_min": round(oldest(now), 1) if callable(oldest) else None,
        "targets": summary.targets,
        "unchecked": len(summary.unchecked),
        "check_error": summary.error,
        "sent": summary.sent,
        "findings": dict(summary.findings),
        "main_client": scalingo.main_api_requests,
        "backoffs": scalingo.limiter.backoffs,
        "startup_real_s": round(startup, 2),
        "wall_sim_s": round(wall * scale, 1),
        "wall_real_s": round(wall, 2),
        "after_budget_real_s": round(max(0.0, wall - budget), 2),
        "dynamodb_reads": store.reads,
        "dynamodb_writes": store.writes,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "opened": list(store.opened.values()),
    }


# -- the parent: a scenario ------------------------------------------------------------------------------------


def check_env(fake: Any, endpoint: str, table: str, scale: float) -> dict[str, str]:
    from tests.support import dynamodb_local

    return {
        **os.environ,
        **dynamodb_local.aws_test_env(endpoint),
        "SCALINGO_API_TOKEN": fake.api_token,
        "SCALINGO_AUTH_URL": fake.url,
        "SCALINGO_API_URL": fake.region_url(),
        "SCALINGO_DB_API_URL": fake.region_url(),
        "SCALINGO_API_RATE_LIMIT": str(CLIENT_LIMIT),
        "STATE_TABLE": table,
        "MAX_WORKERS": "8",
        "DISCOVERY_EVERY_HOURS": "6",
        "SWEEP_EVERY_HOURS": "6",
        "MISSING_BACKUP_GRACE_HOURS": f"{GRACE_HOURS:g}",
        "GROUP_WAIT_SECONDS": f"{GROUP_WAIT / scale:.3f}",
        "DAILY_REPORT_AT": "",  # the daily report is not what this measures
        "VERIFY_ARCHIVES_EVERY_DAYS": "0",  # archives have their own benchmark (bench/archive_bench.py)
        "PYTHONPATH": str(ROOT / "functions/backup_monitor"),
    }


def run_child(env: dict[str, str], at: float, real: float, scale: float) -> dict[str, Any]:
    """Run one check process; its JSON line, or what went wrong (the harness carries on either way)."""
    command = [sys.executable, __file__, "--child", repr(at), repr(real), repr(scale)]
    limit = 3 * LAMBDA_BUDGET / scale + 120
    try:
        out = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT, timeout=limit)
    except subprocess.TimeoutExpired:
        return {"exit": "timeout", "error": f"no answer within {limit:.0f} s (killed)"}
    lines = out.stdout.strip().splitlines()
    if out.returncode == 0 and lines:
        try:
            row: dict[str, Any] = json.loads(lines[-1])
            return row
        except ValueError:
            pass
    tail = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
    return {"exit": f"crash {out.returncode}", "error": tail[:300]}


def open_at_end(table: str) -> Counter[str]:
    """Incidents open in the state table at the end, by kind (read back through the store)."""
    import boto3

    client = boto3.client("dynamodb")
    keys: list[str] = []
    for page in client.get_paginator("scan").paginate(TableName=table, ProjectionExpression="pk"):
        keys += [item["pk"]["S"] for item in page.get("Items", [])]
    wanted = [k for k in keys if k.startswith(f"{REGION}/") and "/part/" not in k]
    records = DynamoStateStore(table, client).load_many(wanted, unreadable={})
    return Counter(i.kind for r in records.values() for i in r.incidents.values())


def run_scenario(sc: Scenario, endpoint: str) -> dict[str, Any]:
    from backup_monitor.fakes.scalingo import FakeScalingo
    from tests.support import dynamodb_local

    os.environ.update(dynamodb_local.aws_test_env(endpoint))
    table = f"bench-{sc.name}-{uuid.uuid4().hex[:8]}"
    dynamodb_local.create_table(endpoint, table)
    started = time.perf_counter()
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    t0 = start.timestamp()
    rng = random.Random(f"bench-{sc.name}")
    herd_at = start + timedelta(hours=sc.cold_hours + 2)  # then every day at that hour
    herd_hour = herd_at.hour
    horizon = timedelta(hours=sc.cold_hours + sc.steady_hours + 1)
    clock = SimClock(t0, time.time(), sc.scale)
    clock.hold(t0)
    rows: list[dict[str, Any]] = []
    traffic = Traffic()
    opened: dict[tuple[str, str, str], Opened] = {}
    covered_at: float | None = None
    steady_from: float | None = None
    at = t0
    last_main = float("-inf")
    with FakeScalingo(clock=clock) as fake:
        world = World(fake, make_fleet(sc.databases, sc.per_app, herd_hour, rng), start, horizon, rng)
        world.seed()
        fake.main_rate_limit = SCALINGO_LIMIT
        fake.main_rate_window = 60.0 / sc.scale
        env = check_env(fake, endpoint, table, sc.scale)
        mover = Mover(world, clock)
        mover.start()
        try:
            while True:
                if steady_from is None and len(rows) >= sc.cold_hours * 3600 / SCHEDULE:
                    break  # no first coverage within the cap: there is no steady state to measure
                if steady_from is not None and at >= steady_from + sc.steady_hours * 3600:
                    break
                phase = "cold" if steady_from is None else "steady"
                # Checks are 15 simulated minutes apart but only a moment apart in real time: let the fake's
                # rate-limit window forget the previous check, as a quarter of an hour would.
                time.sleep(max(0.0, last_main + fake.main_rate_window - time.monotonic()))
                world.advance(at)
                world.move_pitr(at)
                fake.reset_requests()
                real, mono = time.time(), time.monotonic()
                clock.reset(at, real)
                row = run_child(env, at, real, sc.scale)
                clock.hold(min(clock(), at + SCHEDULE))
                seen = traffic.take(list(fake.requests), at, mono, sc.scale)
                last_main = seen.last_main if seen.last_main is not None else last_main
                row.update(
                    n=len(rows) + 1,
                    phase=phase,
                    at=at,
                    main=seen.main,
                    main_429=seen.main_429,
                    auth=seen.auth,
                    db=seen.db,
                    pitr=seen.pitr,
                    read=len(seen.read),
                    covered=len(traffic.first_read),
                    real_s=round(time.time() - real, 2),
                )
                for o in row.pop("opened", []):
                    incident = Opened(
                        o["key"],
                        o["incident"],
                        o["kind"],
                        datetime.fromisoformat(o["opened_at"]),
                        datetime.fromisoformat(o["slot"]) if o["slot"] else None,
                        o["backup_id"],
                    )
                    opened.setdefault((incident.key, incident.incident, o["opened_at"]), incident)
                rows.append(row)
                progress(sc, row, t0)
                if covered_at is None and len(traffic.first_read) >= sc.databases:
                    covered_at = at
                    if steady_from is None:
                        steady_from = at + SCHEDULE
                at += SCHEDULE
        finally:
            mover.stop()
    end = at
    failed, missing, follow_ups, others = detection(world.slots, opened.values(), traffic, GRACE_HOURS, end)
    still_open = open_at_end(table)
    _drop(table)
    return {
        "scenario": asdict(sc),
        "t0": t0,
        "end": end,
        "herd_hour": herd_hour,
        "herd_at": herd_at.timestamp(),
        "covered_at": covered_at,
        "steady_from": steady_from,
        "rows": rows,
        "traffic": traffic,
        "failed": failed,
        "missing": missing,
        "follow_ups": follow_ups,
        "others": others,
        "open_at_end": still_open,
        "incidents_opened": Counter(o.kind for o in opened.values()),
        "real_s": time.perf_counter() - started,
    }


def _drop(table: str) -> None:
    import boto3

    boto3.client("dynamodb").delete_table(TableName=table)


def progress(sc: Scenario, row: dict[str, Any], t0: float) -> None:
    minutes = round((row["at"] - t0) / 60)
    fields = (
        f"checked {row.get('checked')}, due {row.get('due')}, left {row.get('left')}, "
        f"covered {row['covered']}/{sc.databases}, main {row['main']}, 429s {row['main_429']}, "
        f"exit {row['exit']}, {row['real_s']} s"
    )
    if "error" in row:
        fields += f", error: {row['error']}"
    print(f"[{sc.name}] check {row['n']} {row['phase']} {minutes // 60}:{minutes % 60:02d}: {fields}", file=sys.stderr)


# -- the report ------------------------------------------------------------------------------------------------


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f} %" if whole else "n/a"


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _minutes(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.0f} min" if value < 120 else f"{value / 60:.1f} h"


def _values(rows: Sequence[dict[str, Any]], name: str) -> list[float]:
    return [float(r[name]) for r in rows if isinstance(r.get(name), int | float) and not isinstance(r[name], bool)]


def _mean_max(rows: Sequence[dict[str, Any]], name: str, digits: int = 0) -> str:
    values = _values(rows, name)
    if not values:
        return "n/a"
    return f"{statistics.fmean(values):,.{digits}f} / {max(values):,.{digits}f}"


def _when(moment: datetime | None, t0: float) -> str:
    """A simulated moment as h:mm since the scenario's start."""
    if moment is None:
        return "-"
    minutes = round((moment.timestamp() - t0) / 60)
    return f"{minutes // 60}:{minutes % 60:02d}"


def _detection_line(d: Detection, t0: float) -> str:
    if d.judged:
        text = f"{d.detected}/{d.judged} opened; p50 {_minutes(d.p50())}, worst {_minutes(d.worst())}"
    else:
        text = "none to judge"
    text += f" ({d.injected} injected; {d.too_late} too close to the end"
    if d.unknown_db:
        worst = max(d.unknown_delays_min, default=None)
        text += (
            f"; {d.unknown_db} on a database first read after the slot: {len(d.unknown_delays_min)} opened, "
            f"worst {_minutes(worst)}"
        )
    text += ")"
    if d.undetected:
        missed = ", ".join(f"{addon} (slot {_when(slot, t0)})" for addon, slot in d.undetected[:5])
        text += f"; not opened: {missed}{' …' if len(d.undetected) > 5 else ''}"
    return text


def report(result: dict[str, Any]) -> str:
    sc = Scenario(**result["scenario"])
    rows: list[dict[str, Any]] = result["rows"]
    traffic: Traffic = result["traffic"]
    t0, end, n = result["t0"], result["end"], sc.databases
    covered_at, steady_from = result["covered_at"], result["steady_from"] or end
    cold = [r for r in rows if r["phase"] == "cold"]
    steady = [r for r in rows if r["phase"] == "steady"]
    steady_hours = len(steady) * SCHEDULE / 3600
    steady_main = sum(r["main"] for r in steady)
    exits = Counter(str(r["exit"]) for r in rows)
    failed, missing = result["failed"], result["missing"]
    lines = [
        f"### {sc.name}: {n:,} databases ({sc.apps:,} apps, {sc.per_app} per app), time scaled x{sc.scale:g}",
        "",
        f"Real run time {result['real_s'] / 60:.1f} min for {len(rows)} checks "
        f"({len(rows) * SCHEDULE / 3600:.2f} simulated hours); the herd's slot (30 % of the fleet) at "
        f"{_when_s(result['herd_at'] - t0)} after the start, then daily ({result['herd_hour']:02d}:00 UTC); "
        f"times are h:mm since the start.",
        "",
        "| measure | value |",
        "|---|---|",
    ]
    if covered_at is not None:
        coverage = (
            f"{len(cold)} check(s) ({len(cold) * SCHEDULE / 3600:.2f} h), "
            f"{sum(r['main'] for r in cold):,} main-API requests"
        )
    else:
        read = max((r["covered"] for r in rows), default=0)
        coverage = f"**not reached** in {len(cold)} checks (the cap, `--cold-hours`): {read:,}/{n:,} read"
    lines.append(f"| checks to first coverage | {coverage} |")
    per_db_hour = steady_main / (n * steady_hours) if steady else None
    if steady:
        hourly = traffic.hourly(steady_from, end)
        lines += [
            f"| steady period | {steady_hours:.2f} h, {len(steady)} checks |",
            f"| main-API requests per database-hour, steady | {per_db_hour:.3f} ({steady_main:,} in all) |",
            f"| share of 60/min, steady: hourly average / busiest hour / busiest minute | "
            f"{_pct(statistics.fmean(hourly), 3600)} / {_pct(max(hourly), 3600)} / "
            f"{_pct(traffic.busiest_minute(steady_from, end), 60)} |",
        ]
    cold_hourly = traffic.hourly(t0, steady_from)
    lines += [
        f"| share of 60/min, cold start: hourly average / busiest minute | {_pct(statistics.fmean(cold_hourly), 3600)}"
        f" / {_pct(traffic.busiest_minute(t0, steady_from), 60)} |",
        f"| 429s from the fake / client back-offs | {sum(r['main_429'] for r in rows):,} / "
        f"{sum(int(r.get('backoffs') or 0) for r in rows):,} |",
        f"| failed backups (delay from created_at) | {_detection_line(failed, t0)} |",
        f"| missing backups (delay from slot + {GRACE_HOURS:g} h) | {_detection_line(missing, t0)} |",
        f"| incidents opened, by kind | {_kinds(result['incidents_opened'])} |",
        f'| of them "missing" for the slot of a failed backup | {_unmatched(result["follow_ups"], t0)} |',
        f"| of them answering no injected event | {_unmatched(result['others'], t0)} |",
        f"| incidents open at the end (state table) | {_kinds(result['open_at_end'])} |",
        f"| due / not due per check, steady (mean / max) | {_mean_max(steady, 'due')} ; "
        f"{_mean_max(steady, 'not_due')} |",
        f"| left by a check, cold ; steady (mean / max) | {_mean_max(cold, 'left')} ; {_mean_max(steady, 'left')} |",
        f"| oldest due not reached (min), cold ; steady (mean / max) | {_mean_max(cold, 'oldest_due_min')} ; "
        f"{_mean_max(steady, 'oldest_due_min')} |",
        f"| DynamoDB reads per check, cold ; steady (mean / max) | {_mean_max(cold, 'dynamodb_reads')} ; "
        f"{_mean_max(steady, 'dynamodb_reads')} |",
        f"| DynamoDB writes per check, cold ; steady (mean / max) | {_mean_max(cold, 'dynamodb_writes')} ; "
        f"{_mean_max(steady, 'dynamodb_writes')} |",
        f"| peak RSS of a check (MiB) | {_num(max(_values(rows, 'peak_rss_mib'), default=None), 1)} |",
        f"| check process start (real s, mean / max) | {_mean_max(rows, 'startup_real_s', 2)} |",
        f"| exit statuses | {', '.join(f'{code}: {count}' for code, count in sorted(exits.items()))} |",
    ]
    problems = Counter(
        str(r.get("check_error") or r.get("error")) for r in rows if r.get("check_error") or "error" in r
    )
    if problems:
        text = "; ".join(f"{reason[:160]} ({count} checks)" for reason, count in problems.most_common(3)).replace(
            "|", "/"
        )
        lines.append(f"| check errors | {text} |")
    lines.append("")
    if covered_at is not None:
        lines.append(
            f"- cold start: every database read at least once by check {len(cold)} (started at "
            f"{_when_s(covered_at - t0)}), {sum(r['main'] for r in cold):,} main-API requests until then"
        )
    else:
        lines.append(f"- cold start: no first coverage within {sc.cold_hours:g} h; no steady period measured")
    if per_db_hour:
        lines.append(
            f"- steady: {per_db_hour:.3f} main-API requests per database-hour ({24 * per_db_hour:.1f} a day, "
            f"rediscovery and the herd included); if that grew linearly with the fleet, the client's "
            f"{CLIENT_LIMIT} a minute would be spent on average at {CLIENT_LIMIT * 60 / per_db_hour:,.0f} databases "
            f"(the herd's hour saturates far sooner)"
        )
    lines.append(
        f"- detection: failed p50 {_minutes(failed.p50())}, worst {_minutes(failed.worst())}; missing p50 "
        f"{_minutes(missing.p50())}, worst {_minutes(missing.worst())}"
    )
    lines += ["", *hour_table(rows, t0, traffic), "", *check_table(rows, t0)]
    return "\n".join(lines)


def _when_s(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60}:{minutes % 60:02d}"


def _unmatched(others: Sequence[Opened], t0: float) -> str:
    if not others:
        return "none"
    examples = ", ".join(
        f"{o.kind} {o.key.rsplit('/', 1)[-1]} (slot {_when(o.slot, t0)}, opened {_when(o.opened_at, t0)})"
        for o in others[:4]
    )
    return f"{_kinds(Counter(o.kind for o in others))}: {examples}{' …' if len(others) > 4 else ''}"


def _kinds(counts: Counter[str]) -> str:
    return ", ".join(f"{kind} {count}" for kind, count in sorted(counts.items())) or "none"


def hour_table(rows: Sequence[dict[str, Any]], t0: float, traffic: Traffic) -> list[str]:
    lines = [
        "| hour | phase | checks | databases read | due (max) | left (max) | oldest due (max, min) | "
        "main-API requests | share of 60/min | busiest minute (requests) | 429s | "
        "DynamoDB reads / writes (per check) | peak RSS (MiB) | exit ≠ 0 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    hours: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        hours.setdefault(int((r["at"] - t0) // 3600), []).append(r)
    for hour, part in sorted(hours.items()):
        start = t0 + hour * 3600
        main = sum(r["main"] for r in part)
        phases = "/".join(dict.fromkeys(r["phase"] for r in part))
        lines.append(
            f"| {hour} | {phases} | {len(part)} | {_num(sum(int(r.get('checked') or 0) for r in part))} | "
            f"{_num(max(_values(part, 'due'), default=None))} | {_num(max(_values(part, 'left'), default=None))} | "
            f"{_num(max(_values(part, 'oldest_due_min'), default=None))} | {main:,} | "
            f"{_pct(main, 3600 * len(part) * SCHEDULE / 3600)} | "
            f"{traffic.busiest_minute(start, start + 3600)} | {sum(r['main_429'] for r in part)} | "
            f"{_avg(part, 'dynamodb_reads')} / "
            f"{_avg(part, 'dynamodb_writes')} | {_num(max(_values(part, 'peak_rss_mib'), default=None), 1)} | "
            f"{sum(1 for r in part if r['exit'] != 0)} |"
        )
    return lines


def _avg(rows: Sequence[dict[str, Any]], name: str) -> str:
    values = _values(rows, name)
    return f"{statistics.fmean(values):,.0f}" if values else "n/a"


def _note(row: dict[str, Any]) -> str:
    """A check's error (the monitor's summary, or the harness's), shortened, for a table cell."""
    return str(row.get("check_error") or row.get("error") or "")[:80].replace("|", "/")


def check_table(rows: Sequence[dict[str, Any]], t0: float) -> list[str]:
    lines = [
        "<details><summary>every check</summary>",
        "",
        "| check | time | phase | checked | due | not due | left | oldest due (min) | main-API | 429s | "
        "database API (PITR) | messages | wall (simulated s) | after the budget (real s) | "
        "DynamoDB reads / writes | peak RSS (MiB) | exit | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        minutes = round((r["at"] - t0) / 60)
        lines.append(
            f"| {r['n']} | {minutes // 60}:{minutes % 60:02d} | {r['phase']} | {_num(r.get('checked'))} | "
            f"{_num(r.get('due'))} | {_num(r.get('not_due'))} | {_num(r.get('left'))} | "
            f"{_num(r.get('oldest_due_min'), 0)} | {r['main']:,} | {r['main_429']} | {r['db']:,} ({r['pitr']:,}) | "
            f"{_num(r.get('sent'))} | {_num(r.get('wall_sim_s'), 0)} | {_num(r.get('after_budget_real_s'), 1)} | "
            f"{_num(r.get('dynamodb_reads'))} / {_num(r.get('dynamodb_writes'))} | "
            f"{_num(r.get('peak_rss_mib'), 1)} | {r['exit']} | {_note(r)} |"
        )
    lines += ["", "</details>"]
    return lines


def main() -> int:
    names = [s.name for s in SCENARIOS]
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--child", nargs=3, type=float, metavar=("SIM_AT", "REAL_AT", "SCALE"), help=argparse.SUPPRESS)
    parser.add_argument("--only", choices=names, help="run one scenario")
    parser.add_argument("--steady-hours", type=float, help="simulated steady hours (default: 24; 10000: 8)")
    parser.add_argument("--cold-hours", type=float, help="simulated hours allowed to reach first coverage")
    parser.add_argument("--scale", type=float, help="simulated seconds per real second (default: 20; 10000: 40)")
    parser.add_argument("--json", type=Path, help="also write every check's figures to this file")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    from tests.support import dynamodb_local

    chosen = [
        replace(
            s,
            steady_hours=s.steady_hours if args.steady_hours is None else args.steady_hours,
            cold_hours=s.cold_hours if args.cold_hours is None else args.cold_hours,
            scale=s.scale if args.scale is None else args.scale,
        )
        for s in SCENARIOS
        if args.only in (None, s.name)
    ]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a kill still stops DynamoDB Local (finally)
    local = dynamodb_local.start()
    results = []
    started = time.perf_counter()
    try:
        for sc in chosen:
            results.append(run_scenario(sc, local.endpoint))
    finally:
        local.stop()
    if args.json:
        args.json.write_text(
            json.dumps(
                [{"scenario": r["scenario"], "real_s": r["real_s"], "rows": r["rows"]} for r in results], indent=1
            )
        )
    print(
        f"Fake Scalingo: {SCALINGO_LIMIT} main-API requests a minute; client: SCALINGO_API_RATE_LIMIT={CLIENT_LIMIT}, "
        f"MAX_WORKERS=8, SWEEP_EVERY_HOURS=6, DISCOVERY_EVERY_HOURS=6, MISSING_BACKUP_GRACE_HOURS={GRACE_HOURS:g}; "
        f"a check every 15 minutes, each a new process with the Lambda's budget ({LAMBDA_BUDGET:.0f} s); "
        f"DynamoDB Local. Run time {(time.perf_counter() - started) / 60:.1f} min.\n"
    )
    print("\n\n".join(report(r) for r in results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
