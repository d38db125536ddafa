"""`backup-monitor check --dry-run [--json] [--show-links]` in a subprocess, against the fake Scalingo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from backup_monitor.demo import seed
from tests.fakes import FakeScalingo
from tests.fakes.slack import refusal

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC).replace(microsecond=0)


def run_cli(fake: FakeScalingo, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCALINGO_", "SLACK_", "STATE_"))}
    env.update(
        {
            "SCALINGO_API_TOKEN": fake.api_token,
            "SCALINGO_AUTH_URL": fake.url,
            "SCALINGO_API_URL": fake.region_url(),
            "SCALINGO_DB_API_URL": fake.region_url(),
            "SCALINGO_API_RATE_LIMIT": "6000",
            "DAILY_REPORT_AT": "",  # off: after 08:00 UTC it would add a message (see test_daily_report.py)
            "STATE_PATH": str(tmp_path / "s.sqlite3"),
            "PYTHONPATH": str(ROOT / "functions/backup_monitor"),
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "backup_monitor.cli", "check", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


def test_dry_run_json_prints_one_valid_slack_payload_per_line(fake_scalingo: FakeScalingo, tmp_path: Path) -> None:
    seed(fake_scalingo, NOW)
    result = run_cli(fake_scalingo, tmp_path, "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"messages printed: {len(lines)}" in result.stderr
    assert len(lines) > 1
    payloads = [json.loads(line) for line in lines]
    assert all(refusal(p) is None for p in payloads)
    assert all(p["blocks"] for p in payloads)
    assert any(p["text"].startswith("Backup failed: billing") for p in payloads)
    # download links are there, their tokens hidden
    assert "/download?token=…" in result.stdout
    assert "token=dl-" not in result.stdout + result.stderr


def test_show_links_prints_download_links_whole(fake_scalingo: FakeScalingo, tmp_path: Path) -> None:
    seed(fake_scalingo, NOW)
    result = run_cli(fake_scalingo, tmp_path, "--dry-run", "--json", "--show-links")
    assert result.returncode == 0, result.stderr
    assert "/download?token=dl-" in result.stdout
    console = run_cli(fake_scalingo, tmp_path, "--dry-run")
    assert "/download?token=…" in console.stdout
    assert "token=dl-" not in console.stdout


def test_console_output_keeps_names_intact(fake_scalingo: FakeScalingo, tmp_path: Path) -> None:
    fake_scalingo.add_database("shop", "ad-shop", resource_id="shop_*prod*_`1`", scheduled_hours=[])
    fake_scalingo.add_backup("ad-shop", NOW - timedelta(hours=2), "error", name="nightly_*full*_`dump`")
    result = run_cli(fake_scalingo, tmp_path, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "Backup failed on shop / shop_*prod*_`1` (postgresql, osc-fr1)" in result.stdout
    assert "nightly_*full*_`dump`" in result.stdout
