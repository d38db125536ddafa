"""`make bench`, part 2: verify a generated archive of at least 1 GB streamed from the fake Scalingo API.

Three processes, so each figure is its own: the fake serves the archive (generated on the fly, never on disk);
a second process runs an idle check (verification off), then a check that verifies the archive, and reports
throughput, CPU time and peak RSS; a third decompresses the same bytes with zlib alone, for comparison.
A benchmark, not a test: nothing here asserts a time. Loopback only.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "functions/backup_monitor")]

ARCHIVE_BYTES = int(float(os.environ.get("BENCH_ARCHIVE_MB", "1050")) * 1_000_000)
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def _peak_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def serve() -> int:
    """The fake Scalingo with one MySQL database whose newest backup is the generated archive."""
    from backup_monitor.fakes.archives import generated_archive
    from backup_monitor.fakes.scalingo import FakeScalingo

    chunks, size = generated_archive(ARCHIVE_BYTES, "20261127010000_bench-db")
    with FakeScalingo() as fake:
        fake.add_database("bench", "ad-bench", provider="mysql", scheduled_hours=[(NOW.hour - 2) % 24])
        backup = fake.add_backup("ad-bench", NOW - timedelta(hours=2), size=size)
        fake.set_archive(backup["id"], chunks, content_length=size, chunk_size=256 * 1024)
        print(json.dumps({"url": fake.url, "token": fake.api_token, "size": size}), flush=True)
        sys.stdin.read()  # serve until the parent closes our standard input
    return 0


def verify(url: str, api_token: str, size: int) -> dict[str, Any]:
    """An idle check, then a check that verifies the archive; figures of this process only."""
    from backup_monitor.config import Settings
    from backup_monitor.monitor import Clients, run_check
    from backup_monitor.notifiers import ConsoleNotifier
    from backup_monitor.scalingo.client import ScalingoClient
    from backup_monitor.state.sqlite import SqliteStateStore

    with tempfile.TemporaryDirectory() as folder, open(os.devnull, "w") as devnull:
        settings = Settings.from_env(
            {
                "SCALINGO_API_TOKEN": api_token,
                "SCALINGO_AUTH_URL": url,
                "SCALINGO_API_URL": f"{url}/{{region}}",
                "SCALINGO_DB_API_URL": f"{url}/{{region}}",
                "MONITORED_DATABASES": "bench/ad-bench",
                "STATE_PATH": str(Path(folder) / "state.sqlite3"),
                "VERIFY_ARCHIVES_EVERY_DAYS": "0",
                "VERIFY_MAX_GB": "2",
            }
        )
        store = SqliteStateStore(settings.state_path)
        clients = Clients(ScalingoClient.from_settings(settings), store, ConsoleNotifier(devnull))
        run_check(settings, clients, NOW)
        idle_peak = _peak_mib()
        cpu_before = _cpu_s()
        start = time.perf_counter()
        summary = run_check(replace(settings, verify_archives_every_days=7.0), clients, NOW + timedelta(minutes=15))
        wall = time.perf_counter() - start
        cpu = _cpu_s() - cpu_before
        record = store.load_many(["osc-fr1/bench/ad-bench"])["osc-fr1/bench/ad-bench"]
    verified = record.verified
    return {
        "archive_mb": round(size / 1e6, 1),
        "outcome": verified.outcome if verified else "none",
        "detail": verified.detail if verified else "",
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "mb_per_s": round(size / 1e6 / wall, 1),
        "mb_per_cpu_s": round(size / 1e6 / cpu, 1),
        "idle_peak_rss_mib": idle_peak,
        "peak_rss_mib": _peak_mib(),
        "rss_growth_mib": round(_peak_mib() - idle_peak, 1),
        "messages": summary.sent,
    }


def zlib_alone() -> dict[str, Any]:
    """The same archive bytes through zlib only (generated in memory): the floor our code is measured against."""
    from backup_monitor.fakes.archives import generated_archive

    chunks, size = generated_archive(ARCHIVE_BYTES, "20261127010000_bench-db")
    inflate = zlib.decompressobj(wbits=31)
    out = 0
    cpu_before = _cpu_s()
    start = time.perf_counter()
    for chunk in chunks():
        out += len(inflate.decompress(chunk))
    wall = time.perf_counter() - start
    cpu = _cpu_s() - cpu_before
    return {
        "wall_s": round(wall, 2),
        "mb_per_s": round(size / 1e6 / wall, 1),
        "cpu_s": round(cpu, 2),
        "mb_per_cpu_s": round(size / 1e6 / cpu, 1),
        "unpacked_mb": round(out / 1e6, 1),
    }


def main() -> int:
    if sys.argv[1:2] == ["--serve"]:
        return serve()
    if sys.argv[1:2] == ["--verify"]:
        print(json.dumps(verify(sys.argv[2], sys.argv[3], int(sys.argv[4]))))
        return 0
    if sys.argv[1:2] == ["--zlib"]:
        print(json.dumps(zlib_alone()))
        return 0
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert server.stdout is not None
        ready = json.loads(server.stdout.readline())
        run = [sys.executable, __file__, "--verify", ready["url"], ready["token"], str(ready["size"])]
        ours = json.loads(subprocess.run(run, capture_output=True, text=True, check=True, cwd=ROOT).stdout)
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=30)
    alone = json.loads(
        subprocess.run([sys.executable, __file__, "--zlib"], capture_output=True, text=True, check=True).stdout
    )
    print(f"\nArchive verification: {ours['archive_mb']} MB generated tar.gz (SQL dump) streamed from the fake API\n")
    print(
        "| what | wall (s) | MB/s | CPU (s) | MB per CPU-second | peak RSS (MiB) | "
        "RSS growth over an idle check (MiB) |"
    )
    print("|---|---|---|---|---|---|---|")
    print(
        f"| check verifying the archive ({ours['outcome']}) | {ours['wall_s']} | {ours['mb_per_s']} | "
        f"{ours['cpu_s']} | {ours['mb_per_cpu_s']} | {ours['peak_rss_mib']} | {ours['rss_growth_mib']} |"
    )
    print(
        f"| zlib alone, same bytes from memory | {alone['wall_s']} | {alone['mb_per_s']} | {alone['cpu_s']} | "
        f"{alone['mb_per_cpu_s']} | | |"
    )
    print("\nMB are compressed archive bytes (10^6).")
    print(f"\n{ours['detail']}; {alone['unpacked_mb']} MB unpacked")
    return 0 if ours["outcome"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
