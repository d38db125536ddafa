"""The Lambda handler with a fake LambdaContext: SSM on moto's server, DynamoDB Local, the fakes."""

from __future__ import annotations

import importlib
import io
import itertools
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest

from backup_monitor.demo import seed
from tests.fakes import FakeScalingo
from tests.fakes.slack import FakeSlack
from tests.support.moto import moto_server

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
LOG = io.StringIO()


@dataclass
class FakeContext:
    function_name: str = "backup-monitor"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:eu-west-3:123456789012:function:backup-monitor"
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def handler(
    monkeypatch: pytest.MonkeyPatch, moto_url: str, dynamodb_table: str, fake_scalingo: FakeScalingo
) -> Iterator[tuple[ModuleType, FakeSlack]]:
    seed(fake_scalingo, datetime.now(UTC).replace(microsecond=0))
    with FakeSlack() as slack:
        ssm = boto3.client("ssm", endpoint_url=moto_url)
        ssm.put_parameter(Name="/bm/token", Value=fake_scalingo.api_token, Type="SecureString", Overwrite=True)
        ssm.put_parameter(Name="/bm/webhook", Value=slack.webhook_url, Type="SecureString", Overwrite=True)
        env = {
            "AWS_ENDPOINT_URL_SSM": moto_url,
            "SCALINGO_API_TOKEN_PARAMETER": "/bm/token",
            "SLACK_WEBHOOK_URL_PARAMETER": "/bm/webhook",
            "SCALINGO_AUTH_URL": fake_scalingo.url,
            "SCALINGO_API_URL": fake_scalingo.region_url(),
            "SCALINGO_DB_API_URL": fake_scalingo.region_url(),
            "SCALINGO_API_RATE_LIMIT": "6000",
            "VERIFY_ARCHIVES_EVERY_DAYS": "0",  # the fleet has no archives to serve
            "STATE_TABLE": dynamodb_table,
            "DAILY_REPORT_AT": "",
            "SWEEP_EVERY_HOURS": "0",  # every database at every check (the cadence has its own tests)
            "POWERTOOLS_SERVICE_NAME": "backup-monitor",
            "POWERTOOLS_METRICS_NAMESPACE": "BackupMonitor",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "DEBUG",
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.syspath_prepend(str(ROOT / "functions/backup_monitor"))
        sys.modules.pop("app", None)
        app = importlib.import_module("app")
        from aws_lambda_powertools.utilities import parameters

        parameters.clear_caches()  # type: ignore[no-untyped-call]
        app.metrics.clear_metrics()
        for log_handler in app.logger.handlers:  # the logger bound its stream at import: point it at one we read
            log_handler.setStream(LOG)
        LOG.seek(0)
        LOG.truncate()
        yield app, slack
        sys.modules.pop("app", None)


def emf(output: str) -> dict[str, Any]:
    """The EMF blob the metrics utility printed."""
    for line in output.splitlines():
        if '"_aws"' in line and "CloudWatchMetrics" in line:
            blob: dict[str, Any] = json.loads(line)
            return blob
    raise AssertionError("no EMF output")


def test_scheduled_event_checks_everything_and_flushes_metrics(
    handler: tuple[ModuleType, FakeSlack], capfd: pytest.CaptureFixture[str]
) -> None:
    app, slack = handler
    event = json.loads((EVENTS / "scheduled.json").read_text())
    result = app.lambda_handler(event, FakeContext())
    assert result["checked"] == 6
    assert result["undelivered"] == 0
    captured = capfd.readouterr()
    out = captured.out + captured.err + LOG.getvalue()
    metrics = emf(out)
    assert metrics["ChecksCompleted"] == [1.0] or metrics["ChecksCompleted"] == 1.0
    assert metrics["DatabasesChecked"] in (6.0, [6.0])
    assert metrics["BackupsFailed"] in (1.0, [1.0])
    assert metrics["BackupsMissing"] in (4.0, [4.0])
    assert metrics["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "BackupMonitor"
    assert len(slack.messages()) == 9
    assert event["id"] in out  # the event's id is the correlation id of every log line
    assert slack.webhook_path not in out


def test_the_lambdas_notifier_paces_and_records_where_incidents_were_announced(
    handler: tuple[ModuleType, FakeSlack], dynamodb_table: str
) -> None:
    app, slack = handler
    app.lambda_handler(json.loads((EVENTS / "scheduled.json").read_text()), FakeContext())
    # THEN the warm notifier is paced like the command's (about one message a second to the webhook)
    posts = [c.received_at for c in slack.calls if c.path == slack.webhook_path and c.status == 200]
    assert len(posts) == 9
    assert min(b - a for a, b in itertools.pairwise(posts)) >= 1.0
    # AND each incident knows the destination that heard it (a later one hears what is still open)
    from backup_monitor.notifiers import WebhookNotifier
    from backup_monitor.state.dynamodb import DynamoStateStore

    record = DynamoStateStore(dynamodb_table).load_many(["osc-fr1/ad-billing"])["osc-fr1/ad-billing"]
    assert {inc.destination for inc in record.incidents.values()} == {WebhookNotifier(slack.webhook_url).destination}


def test_manual_event_restricts_the_check(handler: tuple[ModuleType, FakeSlack]) -> None:
    app, _ = handler
    event = json.loads((EVENTS / "manual.json").read_text())
    result = app.lambda_handler(event, FakeContext())
    assert result["targets"] == 2
    assert result["checked"] == 2


def test_slack_down_raises_so_the_invocation_is_an_error(
    handler: tuple[ModuleType, FakeSlack], capfd: pytest.CaptureFixture[str]
) -> None:
    app, slack = handler
    slack.fail_next(200, 503)
    with pytest.raises(app.CheckFailedError, match="undelivered"):
        app.lambda_handler(json.loads((EVENTS / "scheduled.json").read_text()), FakeContext())
    metrics = emf(capfd.readouterr().out)
    assert metrics["MessagesFailed"] not in (0.0, [0.0])
    assert metrics["MessagesSent"] in (0.0, [0.0])


def test_a_check_whose_messages_slack_refused_still_counts_as_completed(
    handler: tuple[ModuleType, FakeSlack], capfd: pytest.CaptureFixture[str]
) -> None:
    app, slack = handler
    slack.fail_next(1, 410, "channel_is_archived")  # the destination is refused: nothing is delivered
    with pytest.raises(app.CheckFailedError, match="channel_is_archived"):
        app.lambda_handler(json.loads((EVENTS / "scheduled.json").read_text()), FakeContext())
    metrics = emf(capfd.readouterr().out)
    assert metrics["ChecksCompleted"] in (1.0, [1.0])  # the heartbeat says the monitor ran
    assert metrics["MessagesFailed"] not in (0.0, [0.0])  # the errors alarm and MessagesFailed say the rest


def scheduled() -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "scheduled.json").read_text())
    return event


def test_a_warm_handler_uses_a_rotated_api_token_after_a_401(
    handler: tuple[ModuleType, FakeSlack], moto_url: str, fake_scalingo: FakeScalingo
) -> None:
    app, slack = handler
    assert app.lambda_handler(scheduled(), FakeContext())["checked"] == 6
    warm = app._state["warm"]
    # The token is rotated: Scalingo refuses the old one and every token issued from it; SSM holds the new one.
    # The handler's cached copy of the old token is still within its cache age.
    fake_scalingo.api_token = "tk-us-rotated-api-token"
    fake_scalingo.expire_tokens()
    ssm = boto3.client("ssm", endpoint_url=moto_url)
    ssm.put_parameter(Name="/bm/token", Value=fake_scalingo.api_token, Type="SecureString", Overwrite=True)
    exchanges, sent = fake_scalingo.count("auth"), len(slack.messages())

    result = app.lambda_handler(scheduled(), FakeContext())

    assert app._state["warm"] is warm  # the same warm container: no cold start
    assert (result["checked"], result["unchecked"], result["error"]) == (6, [], None)
    assert fake_scalingo.count("auth") - exchanges == 2  # the old token refused, the new one accepted
    later = json.dumps(slack.messages()[sent:])
    assert "cannot check" not in later.lower()
    assert fake_scalingo.api_token not in LOG.getvalue()


def test_a_warm_handler_uses_a_rotated_webhook_when_slack_refuses_the_old_one(
    handler: tuple[ModuleType, FakeSlack], moto_url: str, fake_scalingo: FakeScalingo
) -> None:
    app, slack = handler
    app.lambda_handler(scheduled(), FakeContext())  # warm, webhook URL cached
    fake_scalingo.add_backup("ad-shop", datetime.now(UTC), "error", size=None, method="manual")  # news to send
    old_path = slack.webhook_path
    slack.webhook_path = "/services/T000/B000/RotatedSecret"  # the old webhook now answers 404 no_service
    ssm = boto3.client("ssm", endpoint_url=moto_url)
    ssm.put_parameter(Name="/bm/webhook", Value=slack.webhook_url, Type="SecureString", Overwrite=True)
    event = json.loads((EVENTS / "manual.json").read_text())

    result = app.lambda_handler({**event, "id": "after-rotation"}, FakeContext())

    assert result["undelivered"] == 0
    refused = [c for c in slack.calls if c.path == old_path and c.status == 404]
    delivered = [c for c in slack.calls if c.path == slack.webhook_path and c.status == 200]
    assert len(refused) == 1
    assert delivered
    assert slack.webhook_path not in LOG.getvalue()


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_an_unreadable_secret_names_the_parameter_and_ssms_reason(
    handler: tuple[ModuleType, FakeSlack], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, _ = handler
    monkeypatch.setenv("SCALINGO_API_TOKEN_PARAMETER", "/bm/never-stored")
    from backup_monitor.config import ConfigError

    with pytest.raises(ConfigError, match=r"'/bm/never-stored' \(ParameterNotFound"):
        app.lambda_handler(scheduled(), FakeContext())


def test_a_manual_event_naming_unknown_databases_is_an_error_naming_them(
    handler: tuple[ModuleType, FakeSlack], capfd: pytest.CaptureFixture[str]
) -> None:
    app, slack = handler
    event = {"id": "typo", "databases": ["shop-prod/ad-shop", "shop-prod/ad-typo", "osc-fr1/nope/ad-nope"]}
    with pytest.raises(app.CheckFailedError, match=r"unknown databases \(not monitored\): osc-fr1/nope/ad-nope, "):
        app.lambda_handler(event, FakeContext())
    assert slack.messages() == []
    assert "ChecksCompleted" not in emf(capfd.readouterr().out)  # it does not feed the heartbeat


@dataclass
class NearlyOutOfTimeContext(FakeContext):
    def get_remaining_time_in_millis(self) -> int:
        return 60_000  # no more than the safety margin: no database may be started


def test_the_lambdas_remaining_time_bounds_the_check(
    handler: tuple[ModuleType, FakeSlack], capfd: pytest.CaptureFixture[str]
) -> None:
    app, _ = handler
    event = json.loads((EVENTS / "scheduled.json").read_text())
    app.lambda_handler(event, FakeContext())  # discovery is cached from here on
    capfd.readouterr()
    app.metrics.clear_metrics()
    # WHEN an invocation has only its safety margin left THEN it starts nothing, and with databases due that is
    # a failure (issue 18: a check that reaches none of the due databases is not a success, nor a heartbeat)
    with pytest.raises(app.CheckFailedError, match="no due database was reached"):
        app.lambda_handler(event, NearlyOutOfTimeContext())
    metrics = emf(capfd.readouterr().out)
    assert metrics["DatabasesLeft"] in (6.0, [6.0])
    assert metrics["DatabasesDue"] in (6.0, [6.0])
    assert "ChecksCompleted" not in metrics
