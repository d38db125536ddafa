"""Environments for the monitor in tests: the fake Scalingo API's settings, and, for the command run as a
subprocess, only what a shell would give it, nothing another test left in this process's os.environ (a
leaked CHECK_TIME_LIMIT_SECONDS or STATE_TABLE would change the run)."""

from __future__ import annotations

import os
from pathlib import Path

from backup_monitor.fakes.scalingo import FakeScalingo

ROOT = Path(__file__).resolve().parents[2]

KEPT = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


def clean_env() -> dict[str, str]:
    """The variables a subprocess needs to start, without the monitor's or AWS's settings."""
    return {k: v for k, v in os.environ.items() if k in KEPT}


def scalingo_env(fake: FakeScalingo) -> dict[str, str]:
    """The settings that point the monitor at the fake Scalingo API: its token and its three URLs."""
    return {
        "SCALINGO_API_TOKEN": fake.api_token,
        "SCALINGO_AUTH_URL": fake.url,
        "SCALINGO_API_URL": fake.region_url(),
        "SCALINGO_DB_API_URL": fake.region_url(),
    }


def command_env(fake: FakeScalingo, state: Path, **extra: str) -> dict[str, str]:
    """The environment of `backup-monitor` run as a subprocess against the fake: clean, the fake's settings, a
    quota no test waits on, neither archive verification nor a daily report, its own state file; then `extra`."""
    return (
        clean_env()
        | scalingo_env(fake)
        | {
            "SCALINGO_API_RATE_LIMIT": "6000",
            "VERIFY_ARCHIVES_EVERY_DAYS": "0",
            "DAILY_REPORT_AT": "",
            "STATE_PATH": str(state),
            "PYTHONPATH": str(ROOT / "functions/backup_monitor"),
        }
        | extra
    )
