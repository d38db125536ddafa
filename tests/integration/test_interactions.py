"""The Slack interactivity endpoint end to end (issue 20): signed clicks over real HTTP to `backup-monitor serve`
in a subprocess (SQLite) and to the Lambda handler with Function URL events (DynamoDB Local, SSM on moto), the
fake Scalingo API and the fake Slack (its response_url and usergroups.users.list); then real checks."""

from __future__ import annotations

import base64
import importlib
import json
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest

from backup_monitor.config import Settings
from backup_monitor.interactions import SEEN_KEY_PREFIX, Endpoint, build_endpoint
from backup_monitor.interactions_ui import ACTION_ACK, ACTION_DOWNLOAD, ACTION_SILENCE, ACTION_UNSILENCE, ButtonValue
from backup_monitor.monitor import Clients, run_check
from backup_monitor.notifiers import BotNotifier
from backup_monitor.scalingo.client import ScalingoClient, build_session
from backup_monitor.state.base import Blob
from backup_monitor.state.dynamodb import DynamoStateStore
from backup_monitor.state.silences import load_silences
from backup_monitor.state.sqlite import SqliteStateStore
from tests.fakes import FakeScalingo
from tests.fakes.slack import FakeSlack
from tests.support.interactions import SECRET, click_body, post, serving, signed_headers
from tests.support.moto import moto_server
from tests.support.processes import clean_env, scalingo_env

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC).replace(microsecond=0)
KEY = "osc-fr1/ad-bill"
BACKUP = "bk-bill-1"
CHECK_ENV = {
    "SCALINGO_API_RATE_LIMIT": "6000",
    "VERIFY_ARCHIVES_EVERY_DAYS": "0",
    "DAILY_REPORT_AT": "",
    "SWEEP_EVERY_HOURS": "0",
    "SLACK_CHANNEL": "C0ALERTS",
}


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def env_for(fake: FakeScalingo, slack: FakeSlack, state: Path | None, **extra: str) -> dict[str, str]:
    env = {
        **scalingo_env(fake),
        **CHECK_ENV,
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_API_URL": slack.api_url,
        "SLACK_SIGNING_SECRET": SECRET,
        **extra,
    }
    if state is not None:
        env["STATE_PATH"] = str(state)
    return env


def check(fake: FakeScalingo, slack: FakeSlack, store: Any, at: datetime) -> list[str]:
    """One real check at `at` (the bot path, as the buttons need); the texts of what it posted."""
    env = env_for(fake, slack, None)
    env.pop("SLACK_SIGNING_SECRET")
    settings = Settings.from_env(env)
    scalingo = ScalingoClient.from_settings(settings, session=build_session(retries=1, backoff_factor=0.01))
    notifier = BotNotifier(slack.bot_token, "C0ALERTS", base_url=slack.api_url)
    before = len(slack.messages())
    summary = run_check(settings, Clients(scalingo, store, notifier), at)
    assert summary.exit_code == 0, summary.line()
    return [json.dumps(m, ensure_ascii=False) for m in slack.messages()[before:]]


def failing(fake: FakeScalingo, slack: FakeSlack, store: Any) -> None:
    """billing and shop checked with a good backup, then billing's next backup fails: announced."""
    for app, addon in (("billing", "ad-bill"), ("shop", "ad-shop")):
        fake.add_database(app, addon, scheduled_hours=[(NOW - timedelta(hours=1)).hour])
        fake.add_backup(addon, NOW - timedelta(hours=1), size=10**9, backup_id=BACKUP if addon == "ad-bill" else None)
    check(fake, slack, store, NOW)
    fake.add_backup("ad-bill", NOW + timedelta(minutes=10), "error", size=0)
    opened = check(fake, slack, store, NOW + timedelta(minutes=20))
    assert len(opened) == 1
    assert "billing" in opened[0]


def click(action: str, value: ButtonValue, slack: FakeSlack, name: str, user: str = "U0ONCALL") -> bytes:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Backup failed* billing"}}]
    return click_body(action, value.encode(), slack.response_url(name), user=user, blocks=blocks)


def replies(slack: FakeSlack, name: str) -> list[dict[str, Any]]:
    return slack.responses(name)


def test_a_signed_acknowledge_is_recorded_the_message_edited_and_the_next_check_sends_no_reminder(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path
) -> None:
    # GIVEN billing's failed backup announced, and the endpoint served over HTTP
    state = tmp_path / "s.sqlite3"
    failing(fake_scalingo, slack, SqliteStateStore(state))
    with serving({**clean_env(), **env_for(fake_scalingo, slack, state)}) as url:
        # WHEN on-call clicks Acknowledge
        body = click(ACTION_ACK, ButtonValue(KEY, incident="failed"), slack, "ack")
        started = time.monotonic()
        status, _ = post(url, body, signed_headers(body))
        took = time.monotonic() - started
    # THEN it is answered at once, recorded in the state, and the message edited through response_url
    assert status == 200
    assert took < 3.0
    incident = SqliteStateStore(state).load_many([KEY])[KEY].incidents["failed"]
    assert incident.acknowledged_by == "U0ONCALL"
    (edit,) = replies(slack, "ack")
    assert edit["replace_original"] is True
    assert "<@U0ONCALL>" in json.dumps(edit)
    assert "*Backup failed* billing" in json.dumps(edit["blocks"])  # the message's facts are kept
    # AND a day later only the other incident would be reminded: billing's gets no reminder
    fake_scalingo.add_backup("ad-shop", NOW + timedelta(minutes=30), "error", size=0)
    check(fake_scalingo, slack, SqliteStateStore(state), NOW + timedelta(minutes=40))
    later = check(fake_scalingo, slack, SqliteStateStore(state), NOW + timedelta(hours=25))
    assert len(later) == 1
    assert "shop" in later[0]
    assert "billing" not in later[0]


def test_a_bad_signature_an_old_timestamp_or_a_replay_gets_401_and_changes_nothing(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path
) -> None:
    state = tmp_path / "s.sqlite3"
    failing(fake_scalingo, slack, SqliteStateStore(state))
    before = SqliteStateStore(state).load_many([KEY])[KEY]
    silence = click(ACTION_SILENCE, ButtonValue(KEY, incident="failed"), slack, "x")
    with serving({**clean_env(), **env_for(fake_scalingo, slack, state)}) as url:
        forged = signed_headers(silence, secret="not-the-signing-secret")
        assert post(url, silence, forged)[0] == 401
        stale = signed_headers(silence, timestamp=int(time.time()) - 301)
        assert post(url, silence, stale)[0] == 401
        altered = signed_headers(silence)
        assert post(url, silence.replace(b"U0ONCALL", b"U0INTRUDR"), altered)[0] == 401
        assert post(url, silence, {"Content-Type": "application/x-www-form-urlencoded"})[0] == 401
        # nothing changed so far; then one genuine request, accepted once: its replay is refused
        assert load_silences(SqliteStateStore(state)) == ()
        assert slack.all_responses() == []
        ack = click(ACTION_ACK, ButtonValue(KEY, incident="failed"), slack, "ack")
        headers = signed_headers(ack)
        assert post(url, ack, headers)[0] == 200
        after_first = SqliteStateStore(state).load_many([KEY])[KEY]
        assert post(url, ack, headers)[0] == 401
        assert post(url + "x", ack, headers)[0] == 404
    assert SqliteStateStore(state).load_many([KEY])[KEY] == after_first
    assert after_first.version == before.version + 1
    assert load_silences(SqliteStateStore(state)) == ()
    assert len(replies(slack, "ack")) == 1
    assert replies(slack, "x") == []


def test_a_download_click_gives_a_fresh_link_to_the_clicker_only(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path
) -> None:
    state = tmp_path / "s.sqlite3"
    failing(fake_scalingo, slack, SqliteStateStore(state))
    value = ButtonValue(KEY, backup=BACKUP)
    fake_scalingo.reset_requests()  # the checks asked for links (DOWNLOAD_LINKS): count the clicks' only
    with serving({**clean_env(), **env_for(fake_scalingo, slack, state)}) as url:
        links = []
        for i in range(2):
            body = click(ACTION_DOWNLOAD, value, slack, f"dl{i}")
            assert post(url, body, signed_headers(body))[0] == 200
            (reply,) = replies(slack, f"dl{i}")
            assert reply["response_type"] == "ephemeral"
            assert reply["replace_original"] is False
            found = [s for s in json.dumps(reply).split('"') if "token=dl-" in s]
            assert found, reply
            links.append(found[0])
    # a fresh link at each click, asked of Scalingo then; never posted to the channel
    assert links[0] != links[1]
    assert fake_scalingo.count(path_contains=f"/backups/{BACKUP}/archive") == 2
    posted = json.dumps([c.body for c in slack.calls if not c.path.startswith("/response/")])
    assert links[0] not in posted
    assert links[1] not in posted


def test_a_user_outside_download_allowed_users_is_refused_and_a_groups_member_is_not(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path
) -> None:
    state = tmp_path / "s.sqlite3"
    failing(fake_scalingo, slack, SqliteStateStore(state))
    slack.usergroups["S0ONCALL"] = ["U0MEMBER"]
    env = env_for(fake_scalingo, slack, state, DOWNLOAD_ALLOWED_USERS="U0ALLOWED, S0ONCALL")
    value = ButtonValue(KEY, backup=BACKUP)
    fake_scalingo.reset_requests()
    with serving({**clean_env(), **env}) as url:
        for user in ("U0ALLOWED", "U0MEMBER", "U0OTHER"):
            body = click(ACTION_DOWNLOAD, value, slack, user, user=user)
            assert post(url, body, signed_headers(body))[0] == 200
    for user in ("U0ALLOWED", "U0MEMBER"):
        assert "token=dl-" in json.dumps(replies(slack, user))
    (refused,) = replies(slack, "U0OTHER")
    assert refused["response_type"] == "ephemeral"
    assert "token=dl-" not in json.dumps(refused)
    assert "not among the people allowed" in refused["text"]
    assert fake_scalingo.count(path_contains="/archive") == 2  # nothing asked of Scalingo for the refused one


def test_with_download_links_off_an_old_button_gets_no_link(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path
) -> None:
    state = tmp_path / "s.sqlite3"
    failing(fake_scalingo, slack, SqliteStateStore(state))
    fake_scalingo.reset_requests()
    with serving({**clean_env(), **env_for(fake_scalingo, slack, state, DOWNLOAD_LINKS="false")}) as url:
        body = click(ACTION_DOWNLOAD, ButtonValue(KEY, backup=BACKUP), slack, "off")
        assert post(url, body, signed_headers(body))[0] == 200
    (reply,) = replies(slack, "off")
    assert reply["response_type"] == "ephemeral"
    assert "DOWNLOAD_LINKS=false" in json.dumps(reply)
    assert "token=" not in json.dumps(reply)
    assert fake_scalingo.count(path_contains="/archive") == 0


def test_a_database_the_monitor_does_not_watch_and_a_slow_scalingo_are_told_politely(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path
) -> None:
    state = tmp_path / "s.sqlite3"
    failing(fake_scalingo, slack, SqliteStateStore(state))
    with serving({**clean_env(), **env_for(fake_scalingo, slack, state)}) as url:
        unknown = click(ACTION_DOWNLOAD, ButtonValue("osc-fr1/ad-nope", backup=BACKUP), slack, "unknown")
        assert post(url, unknown, signed_headers(unknown))[0] == 200
        fake_scalingo.fail("/archive", 200, json.dumps({"download_url": "x" * 40}), drip_seconds=0.2)
        slow = click(ACTION_DOWNLOAD, ButtonValue(KEY, backup=BACKUP), slack, "slow")
        started = time.monotonic()
        assert post(url, slow, signed_headers(slow))[0] == 200
        took = time.monotonic() - started
        hostile = click_body(ACTION_ACK, '{"k": 5}', slack.response_url("hostile"))
        assert post(url, hostile, signed_headers(hostile))[0] == 200
    assert "does not watch this database" in replies(slack, "unknown")[0]["text"]
    assert "did not answer in time" in replies(slack, "slow")[0]["text"]
    assert took < 3.0
    assert "cannot be read" in replies(slack, "hostile")[0]["text"]


def test_a_silence_set_by_a_button_is_honoured_by_the_next_check_and_expires(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path
) -> None:
    # GIVEN shop silenced by a button (on a message about it), while its backups are fine
    state = tmp_path / "s.sqlite3"
    failing(fake_scalingo, slack, SqliteStateStore(state))
    shop = "osc-fr1/ad-shop"
    with serving({**clean_env(), **env_for(fake_scalingo, slack, state)}) as url:
        body = click(ACTION_SILENCE, ButtonValue(shop, incident="failed"), slack, "silence")
        clicked = datetime.now(UTC)  # the endpoint's clock (NOW was read when the tests were collected)
        assert post(url, body, signed_headers(body))[0] == 200
        answered = datetime.now(UTC)
    (silence,) = load_silences(SqliteStateStore(state))
    assert (silence.pattern, silence.by, silence.reason) == (shop, "U0ONCALL", "silenced from Slack")
    assert clicked + timedelta(hours=24) - timedelta(seconds=1) <= silence.until <= answered + timedelta(hours=24)
    (edit,) = replies(slack, "silence")
    assert edit["replace_original"] is True
    assert silence.id in json.dumps(edit)  # the Unsilence button carries it
    # WHEN its backup fails during the silence: nothing is said about it
    fake_scalingo.add_backup("ad-shop", NOW + timedelta(hours=1), "error", size=0)
    assert check(fake_scalingo, slack, SqliteStateStore(state), NOW + timedelta(hours=2)) == []
    assert SqliteStateStore(state).load_many([shop])[shop].incidents["failed"].unannounced
    # THEN once the silence has expired, what is still open is announced, once
    after = [m for m in check(fake_scalingo, slack, SqliteStateStore(state), NOW + timedelta(hours=25)) if "shop" in m]
    assert len(after) == 1
    assert "Backup failed" in after[0]


def test_unsilence_from_the_button_ends_the_silence(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path
) -> None:
    state = tmp_path / "s.sqlite3"
    failing(fake_scalingo, slack, SqliteStateStore(state))
    with serving({**clean_env(), **env_for(fake_scalingo, slack, state)}) as url:
        body = click(ACTION_SILENCE, ButtonValue(KEY, incident="failed"), slack, "s")
        assert post(url, body, signed_headers(body))[0] == 200
        (silence,) = load_silences(SqliteStateStore(state))
        body = click(ACTION_UNSILENCE, ButtonValue(KEY, silence=silence.id), slack, "u")
        assert post(url, body, signed_headers(body))[0] == 200
    (ended,) = load_silences(SqliteStateStore(state))
    assert ended.ended_by == "U0ONCALL"
    assert not ended.is_active(datetime.now(UTC))
    assert "<@U0ONCALL>" in json.dumps(replies(slack, "u"))


def test_silence_clicked_twice_is_one_silence_and_one_unsilence_ends_it(
    fake_scalingo: FakeScalingo, slack: FakeSlack, tmp_path: Path
) -> None:
    """Silence clicked on two messages about one database (its failure and its missed slot): one silence, which
    both messages name, so one Unsilence leaves the database unsilenced."""
    state = tmp_path / "s.sqlite3"
    failing(fake_scalingo, slack, SqliteStateStore(state))
    with serving({**clean_env(), **env_for(fake_scalingo, slack, state)}) as url:
        for name, incident in (("s1", "failed"), ("s2", "missing")):
            body = click(ACTION_SILENCE, ButtonValue(KEY, incident=incident), slack, name)
            assert post(url, body, signed_headers(body))[0] == 200
        (silence,) = load_silences(SqliteStateStore(state))
        assert silence.id in json.dumps(replies(slack, "s2"))
        body = click(ACTION_UNSILENCE, ButtonValue(KEY, silence=silence.id), slack, "u")
        assert post(url, body, signed_headers(body))[0] == 200
    assert not any(s.is_active(datetime.now(UTC)) for s in load_silences(SqliteStateStore(state)))


def test_serve_refuses_to_start_without_a_signing_secret(fake_scalingo: FakeScalingo, tmp_path: Path) -> None:
    import subprocess

    env = {**clean_env(), **scalingo_env(fake_scalingo), "STATE_PATH": str(tmp_path / "s.sqlite3")}
    env["PYTHONPATH"] = str(ROOT / "functions/backup_monitor")
    done = subprocess.run(
        [sys.executable, "-m", "backup_monitor.cli", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "SLACK_SIGNING_SECRET" in done.stderr


# -- DynamoDB: concurrent deliveries of one request act once -------------------------------------------------


def test_two_concurrent_deliveries_of_one_signed_request_act_once_on_dynamodb(
    fake_scalingo: FakeScalingo, slack: FakeSlack, dynamodb_table: str
) -> None:
    store = DynamoStateStore(dynamodb_table)
    failing(fake_scalingo, slack, store)
    endpoint = build_endpoint(Settings.from_env(env_for(fake_scalingo, slack, None, STATE_TABLE=dynamodb_table)))
    body = click(ACTION_SILENCE, ButtonValue(KEY, incident="failed"), slack, "twice")
    headers = signed_headers(body)
    statuses: list[int] = []
    barrier = threading.Barrier(4)

    def deliver() -> None:
        barrier.wait()
        statuses.append(endpoint.handle(headers, body).status)

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 401, 401, 401]
    assert len(load_silences(store)) == 1
    assert len(replies(slack, "twice")) == 1


def test_a_seen_signature_expires_and_the_create_is_conditional_on_both_stores(
    dynamodb_table: str, tmp_path: Path
) -> None:
    for store in (DynamoStateStore(dynamodb_table), SqliteStateStore(tmp_path / "s.sqlite3")):
        blob = Blob(SEEN_KEY_PREFIX + "ab", "1", 1000.0)
        assert store.create_blob(blob, 900.0)
        assert not store.create_blob(blob, 999.0)
        assert store.create_blob(Blob(blob.key, "2", 2000.0), 1000.0)  # expired: taken again
        assert store.load_blobs([blob.key])[blob.key].data == "2"


# -- the Lambda behind its Function URL ------------------------------------------------------------------------


@dataclass
class FakeContext:
    function_name: str = "backup-monitor-interactions"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:eu-west-3:123456789012:function:backup-monitor-interactions"
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345679"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def url_event(body: bytes, headers: dict[str, str], *, b64: bool, path: str = "/slack/interactions") -> dict[str, Any]:
    """A Function URL event (payload format 2.0): headers in lower case, the body base64 or not."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {k.lower(): v for k, v in headers.items()},
        "requestContext": {"http": {"method": "POST", "path": path, "sourceIp": "127.0.0.1"}},
        "body": base64.b64encode(body).decode() if b64 else body.decode(),
        "isBase64Encoded": b64,
    }


@pytest.fixture
def lambda_app(
    monkeypatch: pytest.MonkeyPatch, dynamodb_table: str, fake_scalingo: FakeScalingo, slack: FakeSlack
) -> Iterator[ModuleType]:
    with moto_server() as moto_url:
        ssm = boto3.client("ssm", endpoint_url=moto_url)
        ssm.put_parameter(Name="/bm/token", Value=fake_scalingo.api_token, Type="SecureString", Overwrite=True)
        ssm.put_parameter(Name="/bm/signing", Value=SECRET, Type="SecureString", Overwrite=True)
        ssm.put_parameter(Name="/bm/bot", Value=slack.bot_token, Type="SecureString", Overwrite=True)
        env = {
            "AWS_ENDPOINT_URL_SSM": moto_url,
            "SCALINGO_API_TOKEN_PARAMETER": "/bm/token",
            "SLACK_SIGNING_SECRET_PARAMETER": "/bm/signing",
            "SLACK_BOT_TOKEN_PARAMETER": "/bm/bot",
            "SLACK_CHANNEL": "C0ALERTS",
            "SLACK_API_URL": slack.api_url,
            "STATE_TABLE": dynamodb_table,
            "SCALINGO_AUTH_URL": fake_scalingo.url,
            "SCALINGO_API_URL": fake_scalingo.region_url(),
            "SCALINGO_DB_API_URL": fake_scalingo.region_url(),
            "DOWNLOAD_ALLOWED_USERS": "S0ONCALL",
            "POWERTOOLS_SERVICE_NAME": "backup-monitor",
        }
        for key in ("SCALINGO_API_TOKEN", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "STATE_PATH"):
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        sys.path.insert(0, str(ROOT / "functions/backup_monitor"))
        module = importlib.import_module("interactions_app")
        module._state.clear()
        yield module
        module._state.clear()


def test_the_lambda_handles_function_url_events_base64_or_not(
    lambda_app: ModuleType, fake_scalingo: FakeScalingo, slack: FakeSlack, dynamodb_table: str
) -> None:
    store = DynamoStateStore(dynamodb_table)
    failing(fake_scalingo, slack, store)
    slack.usergroups["S0ONCALL"] = ["U0ONCALL"]
    ack = click(ACTION_ACK, ButtonValue(KEY, incident="failed"), slack, "ack")
    event = url_event(ack, signed_headers(ack), b64=True)
    answer = lambda_app.lambda_handler(event, FakeContext())
    assert answer["statusCode"] == 200
    assert store.load_many([KEY])[KEY].incidents["failed"].acknowledged_by == "U0ONCALL"
    assert "<@U0ONCALL>" in json.dumps(replies(slack, "ack"))
    # the same event again (a replay), a bad signature, a stale one, another path: refused, nothing changed
    version = store.load_many([KEY])[KEY].version
    assert lambda_app.lambda_handler(event, FakeContext())["statusCode"] == 401
    forged = url_event(ack, signed_headers(ack, secret="wrong"), b64=False)
    assert lambda_app.lambda_handler(forged, FakeContext())["statusCode"] == 401
    stale = url_event(ack, signed_headers(ack, timestamp=int(time.time()) - 400), b64=False)
    assert lambda_app.lambda_handler(stale, FakeContext())["statusCode"] == 401
    assert lambda_app.lambda_handler(url_event(ack, {}, b64=False, path="/"), FakeContext())["statusCode"] == 404
    assert store.load_many([KEY])[KEY].version == version
    assert len(replies(slack, "ack")) == 1
    # a download by a member of the allowed group: the link to them only; by someone else: refused
    for user in ("U0ONCALL", "U0OTHER"):
        body = click(ACTION_DOWNLOAD, ButtonValue(KEY, backup=BACKUP), slack, user, user=user)
        event = url_event(body, signed_headers(body), b64=False)
        assert lambda_app.lambda_handler(event, FakeContext())["statusCode"] == 200
    (reply,) = replies(slack, "U0ONCALL")
    assert reply["response_type"] == "ephemeral"
    (link,) = [s for s in json.dumps(reply).split('"') if "token=dl-" in s][:1]
    assert "not among the people allowed" in replies(slack, "U0OTHER")[0]["text"]
    assert link.split("token=")[1] not in json.dumps(
        [c.body for c in slack.calls if not c.path.startswith("/response/")]
    )
    assert isinstance(lambda_app._state["endpoint"], Endpoint)
