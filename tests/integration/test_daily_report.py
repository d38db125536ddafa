"""The daily report end to end: exactly once a day over real stores and fake Slack; `backup-monitor status`."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from backup_monitor.cli import EXIT_BUSY
from backup_monitor.config import ReportTime, Settings
from backup_monitor.daily_report import Outcome, report_key, send_daily_report
from backup_monitor.demo import seed
from backup_monitor.messages import Message
from backup_monitor.monitor import Clients, run_check
from backup_monitor.notifiers import ConsoleNotifier, Delivery, Notifier, WebhookNotifier
from backup_monitor.records import Record, ThreadRef
from backup_monitor.scalingo.client import ScalingoClient, build_session
from backup_monitor.state.base import StateStore
from backup_monitor.state.dynamodb import DynamoStateStore
from backup_monitor.state.sqlite import SqliteStateStore
from backup_monitor.status import read_status
from tests.fakes import FakeScalingo
from tests.fakes.slack import FakeSlack

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC).replace(second=0, microsecond=0)
DUE_NOW = f"{NOW:%H:%M} UTC"  # the report time is this minute: the first check sends it


@pytest.fixture
def fleet(fake_scalingo: FakeScalingo) -> FakeScalingo:
    seed(fake_scalingo, NOW)
    return fake_scalingo


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture(params=["sqlite", "dynamodb"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def state_env(store_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if store_kind == "sqlite":
        return {"STATE_PATH": str(tmp_path / "state.sqlite3")}
    return {"STATE_TABLE": request.getfixturevalue("dynamodb_table")}


def env_for(fake: FakeScalingo, **extra: str) -> dict[str, str]:
    return {
        "SCALINGO_API_TOKEN": fake.api_token,
        "SCALINGO_AUTH_URL": fake.url,
        "SCALINGO_API_URL": fake.region_url(),
        "SCALINGO_DB_API_URL": fake.region_url(),
        "SCALINGO_API_RATE_LIMIT": "6000",
        "DAILY_REPORT_AT": DUE_NOW,
        "VERIFY_ARCHIVES_EVERY_DAYS": "0",  # the fake serves no archives here (see test_archive_check.py)
        **extra,
    }


def store_for(settings: Settings) -> StateStore:
    if settings.state_table:
        return DynamoStateStore(settings.state_table)
    return SqliteStateStore(settings.state_path)


def clients_for(settings: Settings, notifier: Notifier) -> Clients:
    scalingo = ScalingoClient.from_settings(settings, session=build_session(retries=1, backoff_factor=0.01))
    return Clients(scalingo, store_for(settings), notifier)


def reports(slack: FakeSlack) -> list[str]:
    return [m["text"] for m in slack.messages() if m["text"].startswith("Daily backup report")]


@dataclass
class OverlappingNotifier:
    """Slack, with a second check run while the first one is sending its report (the two overlap for sure)."""

    inner: Notifier
    name: str = "overlapping"
    other_check: list[Clients] = field(default_factory=list)
    settings: Settings | None = None
    other_summaries: list[int] = field(default_factory=list)

    def send(self, message: Message) -> Delivery:
        if message.text.startswith("Daily backup report") and self.other_check and self.settings:
            clients = self.other_check.pop()
            summary = run_check(self.settings, clients, NOW + timedelta(seconds=30))
            self.other_summaries.append(summary.sent)
        return self.inner.send(message)

    def edit(self, target: ThreadRef, edit_text: str) -> None:
        self.inner.edit(target, edit_text)


def test_a_check_overlapping_the_one_sending_the_report_stays_silent(
    fleet: FakeScalingo, slack: FakeSlack, state_env: dict[str, str]
) -> None:
    settings = Settings.from_env(env_for(fleet, SUCCESS_NOTICES="off", **state_env))
    notifier = OverlappingNotifier(WebhookNotifier(slack.webhook_url), settings=settings)
    notifier.other_check.append(clients_for(settings, WebhookNotifier(slack.webhook_url)))
    # GIVEN the report is due WHEN a second check runs while the first is sending it
    first = run_check(settings, clients_for(settings, notifier), NOW)
    # THEN the report went out once, from the first check
    assert first.exit_code == 0
    assert notifier.other_summaries == [0]  # the other check saw the databases claimed/handled and the report taken
    assert len(reports(slack)) == 1
    # AND later checks that day stay silent
    later = run_check(settings, clients_for(settings, WebhookNotifier(slack.webhook_url)), NOW + timedelta(hours=1))
    assert later.sent == 0
    assert len(reports(slack)) == 1


def run_cli(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SCALINGO_", "SLACK_", "STATE_", "DAILY_"))}
    return subprocess.Popen(
        [sys.executable, "-m", "backup_monitor.cli", *args],
        env={**base, **env, "PYTHONPATH": str(ROOT / "functions/backup_monitor")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def test_two_check_processes_at_once_send_one_report(
    fleet: FakeScalingo, slack: FakeSlack, state_env: dict[str, str]
) -> None:
    fleet.latency = 0.02
    env = env_for(fleet, SLACK_WEBHOOK_URL=slack.webhook_url, **state_env)
    procs = [run_cli(env, "check") for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    codes = sorted(p.returncode for p in procs)
    # On one SQLite file the state's lock may turn the second away at once (exit 75, nothing done); on DynamoDB
    # both run, and the report's claim keeps them apart.
    assert codes == [0, 0] or ("STATE_TABLE" not in state_env and codes == [0, EXIT_BUSY]), outputs
    assert len(reports(slack)) == 1
    # WHEN another check runs later that day THEN no second report
    settings = Settings.from_env(env)
    later = run_check(settings, clients_for(settings, WebhookNotifier(slack.webhook_url)), NOW + timedelta(hours=2))
    assert later.exit_code == 0
    assert len(reports(slack)) == 1


def test_a_report_slack_refused_is_sent_by_the_next_check(slack: FakeSlack, tmp_path: Path) -> None:
    settings = Settings.from_env({"SCALINGO_API_TOKEN": "tk", "DAILY_REPORT_AT": DUE_NOW})
    store = SqliteStateStore(tmp_path / "s.sqlite3")
    notifier = WebhookNotifier(slack.webhook_url)
    # GIVEN Slack fails (past slack-sdk's retries) WHEN the report is due THEN it is not recorded as sent
    slack.fail_next(3, 500)
    assert send_daily_report(settings, store, notifier, [], NOW, "check-a") is Outcome.FAILED
    assert reports(slack) == []
    assert store.load_many([report_key(settings)])[report_key(settings)].claim_owner is None  # claim released
    # WHEN the next check runs THEN it sends the report, and only once
    assert send_daily_report(settings, store, notifier, [], NOW + timedelta(minutes=15), "check-b") is Outcome.SENT
    assert send_daily_report(settings, store, notifier, [], NOW + timedelta(minutes=30), "check-c") is Outcome.NOT_DUE
    assert len(reports(slack)) == 1


def test_a_report_slack_refuses_as_malformed_is_sent_as_plain_text(slack: FakeSlack, tmp_path: Path) -> None:
    settings = Settings.from_env({"SCALINGO_API_TOKEN": "tk", "DAILY_REPORT_AT": DUE_NOW})
    store = SqliteStateStore(tmp_path / "s.sqlite3")
    # GIVEN Slack refuses the report's blocks WHEN it is due THEN it goes again at once as plain text, and counts
    slack.fail_next(1, 400, "invalid_blocks")
    notifier = WebhookNotifier(slack.webhook_url)
    assert send_daily_report(settings, store, notifier, [], NOW, "check-a") is Outcome.SENT
    accepted = [m for m in slack.messages() if "Daily backup report" in m["text"]]
    assert len(accepted) == 1
    assert not accepted[0].get("blocks")
    assert send_daily_report(settings, store, notifier, [], NOW + timedelta(minutes=15), "check-b") is Outcome.NOT_DUE


def test_a_crashed_senders_claim_expires_and_the_report_still_comes(tmp_path: Path) -> None:
    settings = Settings.from_env({"SCALINGO_API_TOKEN": "tk", "DAILY_REPORT_AT": DUE_NOW})
    store = SqliteStateStore(tmp_path / "s.sqlite3")
    out = io.StringIO()
    # GIVEN a check claimed the report record and died before sending
    store.claim(Record(report_key(settings)), "check-dead", NOW.timestamp())
    # WHEN another check comes within the claim THEN it leaves the report to the claimer
    assert send_daily_report(settings, store, ConsoleNotifier(out), [], NOW, "check-b") is Outcome.TAKEN
    # WHEN a check comes after the claim expired THEN it sends the report
    later = NOW + timedelta(minutes=6)
    assert send_daily_report(settings, store, ConsoleNotifier(out), [], later, "check-c") is Outcome.SENT
    assert out.getvalue().count("Daily backup report") == 1


@pytest.mark.parametrize("start", ["2026-03-27T12:00", "2026-10-23T12:00"])
def test_a_week_of_checks_across_a_dst_change_sends_one_report_a_day(tmp_path: Path, start: str) -> None:
    settings = Settings.from_env({"SCALINGO_API_TOKEN": "tk", "DAILY_REPORT_AT": "02:30 Europe/Paris"})
    schedule = settings.daily_report
    assert schedule == ReportTime(time(2, 30), "Europe/Paris")
    store = SqliteStateStore(tmp_path / "s.sqlite3")
    out = io.StringIO()
    moment = datetime.fromisoformat(start).replace(tzinfo=UTC)
    sent: list[datetime] = []
    for _ in range(4 * 24 * 4):  # every 15 minutes for 4 days
        if send_daily_report(settings, store, ConsoleNotifier(out), [], moment, "check") is Outcome.SENT:
            sent.append(moment)
        moment += timedelta(minutes=15)
    local = [s.astimezone(schedule.tz) for s in sent]
    assert [f"{x:%m-%d %H:%M}" for x in local][1:4] in (
        ["03-28 02:30", "03-29 03:00", "03-30 02:30"],  # 02:30 does not exist on the 29th: sent at the jump
        ["10-24 02:30", "10-25 02:30", "10-26 02:30"],  # 02:30 happens twice on the 25th: sent the first time
    )
    assert len(sent) == 5  # the first check (12:00 UTC) sends that day's; then one each day


def test_status_prints_the_report_from_the_state_without_any_api_call(
    fleet: FakeScalingo, slack: FakeSlack, state_env: dict[str, str]
) -> None:
    env = env_for(fleet, SLACK_WEBHOOK_URL=slack.webhook_url, DAILY_REPORT_AT="", **state_env)
    check = run_cli(env, "check")
    assert check.communicate(timeout=120)[0] is not None
    assert check.returncode == 0
    fleet.reset_requests()
    sent_before = len(slack.calls)
    # WHEN status runs (no token needed) THEN it prints one line per database and contacts nobody
    status_env = {k: v for k, v in env.items() if k != "SCALINGO_API_TOKEN"}
    proc = run_cli(status_env, "status")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert fleet.requests == []
    assert len(slack.calls) == sent_before
    assert "Databases watched: 6 (1 app excluded by EXCLUDE_APPS)" in out
    listed = [line for line in out.splitlines() if line.startswith(("  [CRITICAL]", "  [WARNING]"))]
    critical = sum(line.startswith("  [CRITICAL]") for line in listed)
    assert f"Open incidents: {len(listed)} ({critical} critical, {len(listed) - critical} warning)" in out
    assert "  [CRITICAL] Backup failed on billing/billing-10 (osc-fr1), open 0 min" in listed
    rows = [line for line in out.splitlines() if line.startswith("osc-fr1/")]
    assert len(rows) == 6
    billing = next(r for r in rows if r.startswith("osc-fr1/billing/"))
    assert "backup failed (0 min)" in billing
    assert "Daily report: off (DAILY_REPORT_AT is empty)" in out
    assert fleet.api_token not in out + err


def test_status_of_configured_databases_reads_only_their_records(
    fleet: FakeScalingo, slack: FakeSlack, state_env: dict[str, str]
) -> None:
    settings = Settings.from_env(env_for(fleet, **state_env))
    run_check(settings, clients_for(settings, WebhookNotifier(slack.webhook_url)), NOW)
    only = Settings.from_env(env_for(fleet, MONITORED_DATABASES="billing/ad-billing,shop-prod/ad-shop", **state_env))
    text = read_status(only, NOW + timedelta(hours=2))
    assert "Databases watched: 2" in text
    assert [line.split()[0] for line in text.splitlines() if line.startswith("osc-fr1/")] == [
        "osc-fr1/billing/ad-billing",
        "osc-fr1/shop-prod/ad-shop",
    ]
    assert f"last sent: {NOW:%Y-%m-%d}" in text


def test_status_without_state_says_to_run_a_check_first(tmp_path: Path) -> None:
    proc = run_cli({"STATE_PATH": str(tmp_path / "none.sqlite3")}, "status")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "run `backup-monitor check` first" in err
    assert not (tmp_path / "none.sqlite3").exists()
