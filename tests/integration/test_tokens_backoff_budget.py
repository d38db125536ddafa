"""Issue 11 end to end: tokens that outlive the process, one shared back-off, checks that fit the time.

Real parts over loopback: the fake Scalingo API (with a server-side rate limit shared with "another
process"), a fake Slack webhook, SQLite and DynamoDB Local. Rate-limit windows are scaled from a minute down
to about a second so that the tests take seconds; requests per window do not depend on the scale.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from backup_monitor.budget import CURSOR_KEY
from backup_monitor.config import Settings
from backup_monitor.monitor import Clients, Summary, run_check
from backup_monitor.notifiers import WebhookNotifier
from backup_monitor.scalingo.client import ScalingoClient, build_session
from backup_monitor.state.base import StateStore
from backup_monitor.state.dynamodb import DynamoStateStore
from backup_monitor.state.sqlite import SqliteStateStore
from backup_monitor.state.tokens import TOKEN_KEY_PREFIX
from tests.fakes import FakeScalingo
from tests.fakes.slack import FakeSlack

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC).replace(microsecond=0)
WINDOW = 1.0  # seconds standing for Scalingo's minute


def seed_failures(fake: FakeScalingo, count: int) -> list[str]:
    """`count` databases, each with a week of good backups and a failed one two hours ago."""
    slot = (NOW - timedelta(hours=2)).replace(minute=0, second=0)
    keys = []
    for i in range(count):
        addon = f"ad-{i:03d}"
        fake.add_database(f"app-{i:03d}", addon, scheduled_hours=[slot.hour])
        for day in range(7, 0, -1):
            fake.add_backup(addon, slot - timedelta(days=day), size=10_000_000)
        fake.add_backup(addon, slot, "error", size=None)
        keys.append(f"osc-fr1/app-{i:03d}/{addon}")
    return keys


def settings_for(fake: FakeScalingo, keys: list[str], **extra: str) -> Settings:
    return Settings.from_env(
        {
            "SCALINGO_API_TOKEN": fake.api_token,
            "SCALINGO_AUTH_URL": fake.url,
            "SCALINGO_API_URL": fake.region_url(),
            "SCALINGO_DB_API_URL": fake.region_url(),
            "MONITORED_DATABASES": ",".join(keys),
            "SUCCESS_NOTICES": "off",
            # the failed slot must not also turn "missing" while these tests run (the checks span hours)
            "MISSING_BACKUP_GRACE_HOURS": "12",
            "VERIFY_ARCHIVES_EVERY_DAYS": "0",  # the fake serves no archives here (see test_archive_check.py)
            "DAILY_REPORT_AT": "",  # off: after 08:00 UTC it would add a message (see test_daily_report.py)
            **extra,
        }
    )


def new_process(settings: Settings, store: StateStore, slack: FakeSlack) -> Clients:
    """What a new Lambda container has: a new client (empty token cache) and a new store object."""
    scalingo = ScalingoClient.from_settings(
        settings, session=build_session(retries=1, backoff_factor=0.01), window_seconds=WINDOW
    )
    notifier = WebhookNotifier(slack.webhook_url)
    # These checks have a budget of one scaled "minute" (1 s), which Slack's real pace (a message a second)
    # cannot fit; what they measure is Scalingo's budget, and the fake Slack has no rate limit.
    notifier.pace_seconds = 0.0
    return Clients(scalingo, store, notifier)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture(params=["sqlite", "dynamodb"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], StateStore]:
    """Makes a new store object on the same state each time it is called."""
    table = request.getfixturevalue("dynamodb_table") if request.param == "dynamodb" else ""

    def make() -> StateStore:
        return DynamoStateStore(table) if table else SqliteStateStore(tmp_path / "state.sqlite3")

    return make


def test_a_new_process_reuses_the_stored_tokens(
    fake_scalingo: FakeScalingo, slack: FakeSlack, store_factory: Callable[[], StateStore]
) -> None:
    keys = seed_failures(fake_scalingo, 5)
    settings = settings_for(fake_scalingo, keys)
    make_store = store_factory
    # GIVEN a first check in one process
    first = run_check(settings, new_process(settings, make_store(), slack), NOW)
    assert first.exit_code == 0
    assert (fake_scalingo.count("auth"), fake_scalingo.count("main")) == (1, 5)
    # WHEN the next check runs in a new process
    fake_scalingo.reset_requests()
    store = make_store()
    second = run_check(settings, new_process(settings, store, slack), NOW + timedelta(minutes=15))
    # THEN it asks the main API and the auth API nothing, and writes nothing
    assert (second.exit_code, second.checked, second.sent) == (0, 5, 0)
    assert (fake_scalingo.count("auth"), fake_scalingo.count("main")) == (0, 0)
    assert store.writes == 0


def test_stored_tokens_are_sealed(fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path) -> None:
    keys = seed_failures(fake_scalingo, 2)
    settings = settings_for(fake_scalingo, keys)
    run_check(settings, new_process(settings, SqliteStateStore(tmp_path / "s.sqlite3"), slack), NOW)
    raw = (tmp_path / "s.sqlite3").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("s.sqlite3-*") if p.is_file()
    )
    assert fake_scalingo._tokens  # tokens were issued
    for token in fake_scalingo._tokens:
        assert token.encode() not in raw
        assert token.split(".")[2].encode() not in raw
    blobs = SqliteStateStore(tmp_path / "s.sqlite3").load_blobs([f"{TOKEN_KEY_PREFIX}bearer"])
    assert blobs[f"{TOKEN_KEY_PREFIX}bearer"].data.startswith("v1.")


def test_stored_tokens_refused_are_renewed_once(
    fake_scalingo: FakeScalingo, slack: FakeSlack, store_factory: Callable[[], StateStore]
) -> None:
    keys = seed_failures(fake_scalingo, 4)
    settings = settings_for(fake_scalingo, keys)
    make_store = store_factory
    run_check(settings, new_process(settings, make_store(), slack), NOW)
    # GIVEN Scalingo revoked every token the store holds
    fake_scalingo.expire_tokens()
    fake_scalingo.reset_requests()
    # WHEN a new process checks THEN each refused token is dropped and fetched again once, and the check is fine
    second = run_check(settings, new_process(settings, make_store(), slack), NOW + timedelta(minutes=15))
    assert (second.exit_code, second.checked) == (0, 4)
    assert sum(1 for r in fake_scalingo.requests if r.path.endswith("/token") and r.status == 200) == 4
    assert fake_scalingo.count("auth") == 1
    assert sum(1 for r in fake_scalingo.requests if r.api == "db" and r.status == 401) == 4
    # AND the renewed tokens were stored: the process after that needs none
    fake_scalingo.reset_requests()
    third = run_check(settings, new_process(settings, make_store(), slack), NOW + timedelta(minutes=30))
    assert third.exit_code == 0
    assert (fake_scalingo.count("auth"), fake_scalingo.count("main")) == (0, 0)


def test_a_limit_half_used_by_another_process_costs_only_a_few_429s(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path
) -> None:
    keys = seed_failures(fake_scalingo, 60)
    # GIVEN Scalingo's 60 a minute, half already spent by someone else with the same token
    fake_scalingo.main_rate_limit = 60
    fake_scalingo.main_rate_window = WINDOW
    fake_scalingo.consume_main_quota(30)
    settings = settings_for(fake_scalingo, keys, MAX_WORKERS="8")
    clients = new_process(settings, SqliteStateStore(tmp_path / "s.sqlite3"), slack)
    # WHEN a cold check needs 60 addon tokens at the default 40 a minute
    summary = run_check(settings, clients, NOW)
    # THEN every worker backs off together: it finishes, exits 0, and received only a handful of 429s
    rejected = sum(1 for r in fake_scalingo.requests if r.status == 429)
    assert (summary.exit_code, summary.checked, summary.left) == (0, 60, 0), summary.line()
    assert 1 <= rejected <= 10
    assert clients.scalingo.limiter.backoffs <= 3
    assert_each_named_once(slack, keys)


def assert_each_named_once(slack: FakeSlack, keys: list[str]) -> None:
    """Every database's failure is in exactly one accepted message (alone, or in a grouped one)."""
    posted = [json.dumps(m) for m in slack.messages()]
    for key in keys:
        app = key.split("/")[1]
        assert sum(f"*{app}*" in m or f"{app}/" in m for m in posted) == 1, app


def run_until_covered(
    settings: Settings, make_store: Callable[[], StateStore], slack: FakeSlack, fake: FakeScalingo
) -> list[Summary]:
    """Checks every 15 minutes, each in a new process, until one leaves nothing."""
    summaries: list[Summary] = []
    for i in range(10):
        fake.reset_requests()
        summary = run_check(settings, new_process(settings, make_store(), slack), NOW + timedelta(minutes=15 * i))
        # Stopped in time: a budget of one window lets through one window's worth of main-API requests, no more
        # (the next window opens exactly at the deadline, and nothing starts past it).
        assert fake.count("main") <= settings.api_rate_limit
        summaries.append(summary)
        if summary.left == 0 and summary.undelivered == 0:
            break
    return summaries


def test_a_time_budget_stops_in_time_and_the_next_checks_cover_the_rest(
    fake_scalingo: FakeScalingo, slack: FakeSlack, store_factory: Callable[[], StateStore]
) -> None:
    keys = seed_failures(fake_scalingo, 30)
    # GIVEN 30 databases needing a token each, 10 tokens a window, a budget of one window
    settings = settings_for(fake_scalingo, keys, SCALINGO_API_RATE_LIMIT="10", CHECK_TIME_LIMIT_SECONDS="1")
    assert settings.check_time_limit == WINDOW
    summaries = run_until_covered(settings, store_factory, slack, fake_scalingo)
    first = summaries[0]
    # THEN the first check stops with databases left, and that is not a failure
    assert first.left > 0
    assert first.exit_code == 0 or (first.out_of_time and first.undelivered)  # see below
    assert f"left for the next check (time limit): {first.left}" in first.line()
    assert first.checked + first.left == 30
    # AND the following checks reach every database, with every failure announced exactly once
    # (how many checks it takes depends on the machine's speed against the scaled second: each must make
    # progress, and the ten run_until_covered allows must be enough)
    assert len(summaries) >= 2
    assert summaries[-1].left == 0
    lefts = [s.left for s in summaries]
    assert all(later < earlier for earlier, later in pairwise(lefts) if earlier > 0), lefts
    assert not any(s.unchecked for s in summaries)
    # A budget of one scaled second leaves Slack a twentieth of it: a read still in flight at the end of fetching
    # may leave no time to send, and then the messages go first at the next check (exit 1 says so), never lost.
    assert all(s.exit_code == 0 or (s.out_of_time and s.undelivered) for s in summaries)
    assert_each_named_once(slack, keys)
    assert sum(s.sent for s in summaries) == len(slack.messages())


def test_the_databases_left_go_first_next_time(fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path) -> None:
    keys = seed_failures(fake_scalingo, 20)
    settings = settings_for(
        fake_scalingo, keys, SCALINGO_API_RATE_LIMIT="8", CHECK_TIME_LIMIT_SECONDS="1", MAX_WORKERS="1"
    )
    path = tmp_path / "s.sqlite3"
    first = run_check(settings, new_process(settings, SqliteStateStore(path), slack), NOW)
    cursor = json.loads(SqliteStateStore(path).load_blobs([CURSOR_KEY])[CURSOR_KEY].data)["left"]
    assert len(cursor) == first.left > 0
    fake_scalingo.reset_requests()
    run_check(settings, new_process(settings, SqliteStateStore(path), slack), NOW + timedelta(minutes=15))
    fetched = [r.path.split("/")[5] for r in fake_scalingo.requests if r.api == "main" and r.path.endswith("/token")]
    assert fetched[: len(cursor)] == [k.split("/")[1] for k in cursor][: len(fetched)]  # region/addon keys
    assert fetched  # the databases left last time were the first to get a token


def test_the_command_in_a_second_process_reuses_the_tokens(fake_scalingo: FakeScalingo, tmp_path: Path) -> None:
    keys = seed_failures(fake_scalingo, 3)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCALINGO_", "SLACK_", "STATE_"))}
    env.update(
        {
            "SCALINGO_API_TOKEN": fake_scalingo.api_token,
            "SCALINGO_AUTH_URL": fake_scalingo.url,
            "SCALINGO_API_URL": fake_scalingo.region_url(),
            "SCALINGO_DB_API_URL": fake_scalingo.region_url(),
            "MONITORED_DATABASES": ",".join(keys),
            "STATE_PATH": str(tmp_path / "s.sqlite3"),
            "PYTHONPATH": str(ROOT / "functions/backup_monitor"),
        }
    )

    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "backup_monitor.cli", "check"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            check=False,
        )

    assert check().returncode == 0
    fake_scalingo.reset_requests()
    second = check()
    assert second.returncode == 0, second.stderr
    assert "3/3 databases checked" in second.stderr
    assert (fake_scalingo.count("auth"), fake_scalingo.count("main")) == (0, 0)
