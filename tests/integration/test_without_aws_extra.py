"""`pip install scalingo-backup-monitor` without the `aws` extra: the SQLite command never imports boto3,
botocore or Powertools, and a setting that needs them says which install command brings them.

The real command in a subprocess, against the fake Scalingo API on loopback. A `sitecustomize` module makes
the extra's packages absent in that interpreter (an import of one of them fails as if it were not installed)
and writes down every attempt, so even an import whose failure the code swallowed would be seen."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backup_monitor.demo import seed
from backup_monitor.extras import AWS_EXTRA
from tests.fakes import FakeScalingo
from tests.support.processes import clean_env, scalingo_env

ROOT = Path(__file__).resolve().parents[2]
AWS_PACKAGES = ("boto3", "botocore", "aws_lambda_powertools")

BLOCKER = f"""
import atexit, json, os, sys

BLOCKED = {AWS_PACKAGES!r}
attempts = []


class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            attempts.append(name)
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())


@atexit.register
def _report():
    loaded = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
    with open(os.environ["AWS_IMPORT_REPORT"], "w") as out:
        json.dump({{"attempts": attempts, "loaded": loaded}}, out)
"""


@pytest.fixture
def fleet() -> Iterator[FakeScalingo]:
    with FakeScalingo() as fake:
        seed(fake, datetime.now(UTC).replace(microsecond=0))
        yield fake


def run_without_aws(
    tmp_path: Path, env: dict[str, str], *args: str, timeout: float = 120
) -> tuple[int, str, dict[str, list[str]]]:
    """The command's exit status, its output, and what it tried to import of the extra."""
    site = tmp_path / "no-aws"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER)
    report = tmp_path / "imports.json"
    report.unlink(missing_ok=True)
    full_env = {
        **clean_env(),
        **env,
        "PYTHONPATH": f"{site}:{ROOT / 'functions/backup_monitor'}",
        "AWS_IMPORT_REPORT": str(report),
    }
    done = subprocess.run(
        [sys.executable, "-m", "backup_monitor.cli", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr, json.loads(report.read_text())


def test_the_blocker_works(tmp_path: Path) -> None:
    """The probe itself: with it, importing boto3 fails as if it were not installed, and is written down."""
    site = tmp_path / "no-aws"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    report = tmp_path / "imports.json"
    done = subprocess.run(
        [sys.executable, "-c", "import boto3"],
        env={**clean_env(), "PYTHONPATH": str(site), "AWS_IMPORT_REPORT": str(report)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "ModuleNotFoundError: No module named 'boto3'" in done.stderr
    assert json.loads(report.read_text()) == {"attempts": ["boto3"], "loaded": []}


def test_check_and_status_on_sqlite_never_import_the_aws_extra(fleet: FakeScalingo, tmp_path: Path) -> None:
    env = {
        **scalingo_env(fleet),
        "SCALINGO_API_RATE_LIMIT": "6000",
        "STATE_PATH": str(tmp_path / "state.sqlite3"),
        "DAILY_REPORT_AT": "",
    }
    status, output, imports = run_without_aws(tmp_path, env, "check")
    assert status in (0, 1), output  # 1: the seeded fleet has failed backups to tell about
    assert "databases checked" in output
    assert "Traceback" not in output
    assert imports == {"attempts": [], "loaded": []}

    status, output, imports = run_without_aws(tmp_path, env, "status")
    assert status in (0, 1), output
    assert "Traceback" not in output
    assert imports == {"attempts": [], "loaded": []}


def test_the_demo_never_imports_the_aws_extra(tmp_path: Path) -> None:
    status, output, imports = run_without_aws(tmp_path, {}, "demo", timeout=240)
    assert status == 0, output
    assert "The fake API saw" in output
    assert imports == {"attempts": [], "loaded": []}


@pytest.mark.parametrize(
    ("variable", "value", "purpose"),
    [
        ("STATE_TABLE", "backup-monitor-state", "a DynamoDB state table"),
        ("SLACK_WEBHOOK_URL_PARAMETER", "/backup-monitor/slack-webhook-url", "reading SSM parameter"),
    ],
)
def test_an_aws_setting_without_the_extra_names_the_install_command(
    fleet: FakeScalingo, tmp_path: Path, variable: str, value: str, purpose: str
) -> None:
    env = {**scalingo_env(fleet), "STATE_PATH": str(tmp_path / "state.sqlite3"), "DAILY_REPORT_AT": "", variable: value}
    status, output, imports = run_without_aws(tmp_path, env, "check")
    assert status == 2, output
    assert "Traceback" not in output
    line = next(line for line in output.splitlines() if variable in line)
    assert purpose in line
    assert AWS_EXTRA in line
    assert imports["loaded"] == []
    assert imports["attempts"]  # it did try: the message answers a real missing import
    assert fleet.requests == []  # a bad setting, found at start
