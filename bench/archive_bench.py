"""`make bench`, part 2: verify a generated archive of at least 1 GB streamed from the fake Scalingo API.

Each figure from its own process: the fake serves the archive (generated on the fly, never on disk); for each
deflate library (isal, then zlib) a process runs an idle check (verification off), then a check that verifies
the archive with that library, and reports throughput, CPU time and peak RSS; then a process per library
inflates the same bytes from memory with that library alone (raw inflate and CRC-32 in the verifier's 1 MiB
pieces), the floor the checks are measured against.
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


def verify(url: str, api_token: str, size: int, inflater: str) -> dict[str, Any]:
    """An idle check, then a check that verifies the archive with `inflater`; figures of this process only."""
    from backup_monitor.archives import inflate
    from backup_monitor.config import Settings, state_key
    from backup_monitor.monitor import Clients, run_check
    from backup_monitor.notifiers import ConsoleNotifier
    from backup_monitor.scalingo.client import ScalingoClient
    from backup_monitor.state.sqlite import SqliteStateStore

    inflate.INFLATER = inflater
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
        key = state_key("osc-fr1", "ad-bench")
        record = store.load_many([key])[key]
    verified = record.verified
    return {
        "inflater": inflate.INFLATER,
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


def inflate_alone(inflater: str) -> dict[str, Any]:
    """The same archive bytes (generated in memory) through one library only: raw inflate and CRC-32 in pieces of
    at most 1 MiB, as the verifier asks of it, without the gzip framing, the tar or the dump checks."""
    from backup_monitor.archives.container import OUTPUT_PIECE
    from backup_monitor.archives.inflate import BACKENDS
    from backup_monitor.fakes.archives import generated_archive

    backend = BACKENDS[inflater]
    chunks, size = generated_archive(ARCHIVE_BYTES, "20261127010000_bench-db")
    inflate = backend.inflater()
    out = crc = 0
    cpu_before = _cpu_s()
    start = time.perf_counter()
    for number, chunk in enumerate(chunks()):
        piece = inflate.decompress(chunk[10:] if number == 0 else chunk, OUTPUT_PIECE)  # past the 10-byte header
        while True:
            crc = backend.crc32(piece, crc)
            out += len(piece)
            if inflate.eof or not inflate.unconsumed_tail:
                break
            piece = inflate.decompress(inflate.unconsumed_tail, OUTPUT_PIECE)
    wall = time.perf_counter() - start
    cpu = _cpu_s() - cpu_before
    assert inflate.eof, "the deflate stream does not end"
    assert inflate.unused_data[:4] == crc.to_bytes(4, "little"), "the CRC-32 does not match"
    return {
        "inflater": inflater,
        "wall_s": round(wall, 2),
        "mb_per_s": round(size / 1e6 / wall, 1),
        "cpu_s": round(cpu, 2),
        "mb_per_cpu_s": round(size / 1e6 / cpu, 1),
        "unpacked_mb": round(out / 1e6, 1),
    }


def _row(what: str, figures: dict[str, Any], memory: bool) -> str:
    cells = [what, figures["wall_s"], figures["mb_per_s"], figures["cpu_s"], figures["mb_per_cpu_s"]]
    cells += [figures["peak_rss_mib"], figures["rss_growth_mib"]] if memory else ["", ""]
    return "| " + " | ".join(str(c) for c in cells) + " |"


def main() -> int:
    from backup_monitor.archives.inflate import BACKENDS

    if sys.argv[1:2] == ["--serve"]:
        return serve()
    if sys.argv[1:2] == ["--verify"]:
        print(json.dumps(verify(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])))
        return 0
    if sys.argv[1:2] == ["--inflate"]:
        print(json.dumps(inflate_alone(sys.argv[2])))
        return 0
    inflaters = list(BACKENDS)  # isal first when installed, then zlib
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    checks = []
    try:
        assert server.stdout is not None
        ready = json.loads(server.stdout.readline())
        for inflater in inflaters:
            run = [sys.executable, __file__, "--verify", ready["url"], ready["token"], str(ready["size"]), inflater]
            checks.append(json.loads(subprocess.run(run, capture_output=True, text=True, check=True, cwd=ROOT).stdout))
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=30)
    alone = [
        json.loads(subprocess.run(run, capture_output=True, text=True, check=True).stdout)
        for run in ([sys.executable, __file__, "--inflate", inflater] for inflater in inflaters)
    ]
    first = checks[0]
    print(f"\nArchive verification: {first['archive_mb']} MB generated tar.gz (SQL dump) streamed from the fake API\n")
    print(
        "| what | wall (s) | MB/s | CPU (s) | MB per CPU-second | peak RSS (MiB) | "
        "RSS growth over an idle check (MiB) |"
    )
    print("|---|---|---|---|---|---|---|")
    for figures in checks:
        print(_row(f"check verifying the archive with {figures['inflater']} ({figures['outcome']})", figures, True))
    for figures in alone:
        print(_row(f"{figures['inflater']} alone, same bytes from memory", figures, False))
    print("\nMB are compressed archive bytes (10^6).")
    if len(checks) == 2:
        check_ratio = checks[1]["cpu_s"] / checks[0]["cpu_s"]
        alone_ratio = alone[1]["cpu_s"] / alone[0]["cpu_s"]
        print(
            f"\nCPU time, {checks[1]['inflater']} over {checks[0]['inflater']}: {check_ratio:.2f}x for the check, "
            f"{alone_ratio:.2f}x for the library alone"
        )
    print(f"\n{first['detail']}; {alone[0]['unpacked_mb']} MB unpacked")
    return 0 if all(figures["outcome"] == "ok" for figures in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
