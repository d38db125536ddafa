"""The Lambda handler with token shards (SCALINGO_API_TOKEN_PARAMETERS): the scheduled event invokes the function
once per shard, asynchronously, through a small fake of Lambda's Invoke API on loopback (reached through
AWS_ENDPOINT_URL_LAMBDA); a shard's invocation reads its token from SSM (moto's server) and checks that shard."""

from __future__ import annotations

import importlib
import json
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any

import boto3
import pytest

from backup_monitor.check.targets import discovery_key
from backup_monitor.config import Settings, UnknownShardError, shard_id
from backup_monitor.demo import seed
from backup_monitor.state.base import Blob
from backup_monitor.state.dynamodb import DynamoStateStore
from backup_monitor.state.tokens import bearer_blob_key
from tests.fakes import FakeScalingo
from tests.fakes.slack import FakeSlack
from tests.integration.test_handler import EVENTS, LOG, ROOT, FakeContext, emf
from tests.support.moto import moto_server

ACME, GLOBEX = "/bm/acme/token", "/bm/globex/token"
FUNCTION = "bm-test-monitor"


@dataclass
class Invocation:
    path: str
    invocation_type: str | None
    payload: dict[str, Any]


@dataclass
class FakeLambda:
    """POST /2015-03-31/functions/<name>/invocations, recorded; 202 (queued) unless told to refuse a shard."""

    invocations: list[Invocation] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)  # shard ids answered 403 AccessDeniedException
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeLambda:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                payload = json.loads(body or b"{}")
                fake.invocations.append(Invocation(self.path, self.headers.get("X-Amz-Invocation-Type"), payload))
                if payload.get("shard") in fake.refuse:
                    answer = json.dumps({"Message": f"not authorized to perform lambda:InvokeFunction on {FUNCTION}"})
                    self.send_response(403)
                    self.send_header("x-amzn-ErrorType", "AccessDeniedException")
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer.encode())
                    return
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def fake_lambda() -> Iterator[FakeLambda]:
    with FakeLambda() as fake:
        yield fake


@pytest.fixture
def handler(
    monkeypatch: pytest.MonkeyPatch,
    moto_url: str,
    dynamodb_table: str,
    fake_scalingo: FakeScalingo,
    fake_lambda: FakeLambda,
) -> Iterator[tuple[ModuleType, FakeSlack]]:
    seed(fake_scalingo, datetime.now(UTC).replace(microsecond=0))
    with FakeSlack() as slack:
        ssm = boto3.client("ssm", endpoint_url=moto_url)
        ssm.put_parameter(Name=ACME, Value=fake_scalingo.api_token, Type="SecureString", Overwrite=True)
        ssm.put_parameter(Name="/bm/webhook", Value=slack.webhook_url, Type="SecureString", Overwrite=True)
        env = {
            "AWS_ENDPOINT_URL_SSM": moto_url,
            "AWS_ENDPOINT_URL_LAMBDA": fake_lambda.url,
            "SCALINGO_API_TOKEN_PARAMETERS": f"{ACME},{GLOBEX}",  # GLOBEX is never stored: never read here
            "SLACK_WEBHOOK_URL_PARAMETER": "/bm/webhook",
            "SCALINGO_AUTH_URL": fake_scalingo.url,
            "SCALINGO_API_URL": fake_scalingo.region_url(),
            "SCALINGO_DB_API_URL": fake_scalingo.region_url(),
            "SCALINGO_API_RATE_LIMIT": "6000",
            "VERIFY_ARCHIVES_EVERY_DAYS": "0",
            "STATE_TABLE": dynamodb_table,
            "DAILY_REPORT_AT": "",
            "SWEEP_EVERY_HOURS": "0",
            "POWERTOOLS_SERVICE_NAME": "backup-monitor",
            "POWERTOOLS_METRICS_NAMESPACE": "BackupMonitor",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "DEBUG",
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("SCALINGO_API_TOKEN_PARAMETER", raising=False)
        monkeypatch.syspath_prepend(str(ROOT / "functions/backup_monitor"))
        sys.modules.pop("app", None)
        app = importlib.import_module("app")
        from aws_lambda_powertools.utilities import parameters

        parameters.clear_caches()  # type: ignore[no-untyped-call]
        app.metrics.clear_metrics()
        for log_handler in app.logger.handlers:
            log_handler.setStream(LOG)
        LOG.seek(0)
        LOG.truncate()
        yield app, slack
        sys.modules.pop("app", None)


def scheduled() -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "scheduled.json").read_text())
    return event


def test_the_schedule_invokes_one_check_per_shard_and_checks_nothing_itself(
    handler: tuple[ModuleType, FakeSlack],
    fake_lambda: FakeLambda,
    fake_scalingo: FakeScalingo,
    capfd: pytest.CaptureFixture[str],
) -> None:
    app, slack = handler
    event = scheduled()

    result = app.lambda_handler(event, FakeContext(function_name=FUNCTION))

    ids = [shard_id(ACME), shard_id(GLOBEX)]
    assert result == {"shards": ids}
    assert [i.path for i in fake_lambda.invocations] == [f"/2015-03-31/functions/{FUNCTION}/invocations"] * 2
    assert {i.invocation_type for i in fake_lambda.invocations} == {"Event"}  # asynchronous: queued, not awaited
    assert [i.payload for i in fake_lambda.invocations] == [{"shard": s, "id": event["id"]} for s in ids]
    assert fake_scalingo.requests == []  # no token read, no Scalingo call, no message
    assert slack.messages() == []
    metrics = emf(capfd.readouterr().out)
    assert metrics["ShardsInvoked"] in (2.0, [2.0])
    assert metrics["ShardInvocationsFailed"] in (0.0, [0.0])
    assert "ChecksCompleted" not in metrics  # the heartbeat counts the shards' checks


def test_a_refused_invocation_still_invokes_the_other_shards_then_fails(
    handler: tuple[ModuleType, FakeSlack], fake_lambda: FakeLambda, capfd: pytest.CaptureFixture[str]
) -> None:
    app, _ = handler
    fake_lambda.refuse.add(shard_id(ACME))
    with pytest.raises(app.ShardInvocationError, match=rf"{shard_id(ACME)} \(AccessDeniedException"):
        app.lambda_handler(scheduled(), FakeContext(function_name=FUNCTION))
    assert [i.payload["shard"] for i in fake_lambda.invocations] == [shard_id(ACME), shard_id(GLOBEX)]
    metrics = emf(capfd.readouterr().out)
    assert metrics["ShardsInvoked"] in (1.0, [1.0])
    assert metrics["ShardInvocationsFailed"] in (1.0, [1.0])


def test_a_shard_invocation_reads_its_token_from_ssm_and_checks_that_shard(
    handler: tuple[ModuleType, FakeSlack],
    fake_lambda: FakeLambda,
    fake_scalingo: FakeScalingo,
    moto_url: str,
    dynamodb_table: str,
) -> None:
    app, slack = handler
    shard = shard_id(ACME)

    result = app.lambda_handler({"shard": shard, "id": "check-of-acme"}, FakeContext(function_name=FUNCTION))

    assert (result["shard"], result["checked"], result["undelivered"], result["error"]) == (shard, 6, 0, None)
    assert fake_lambda.invocations == []  # a shard's check invokes nothing
    assert len(slack.messages()) == 9
    store = DynamoStateStore(dynamodb_table)
    settings = Settings.from_env({"SCALINGO_API_TOKEN_PARAMETERS": f"{ACME},{GLOBEX}"}).for_shard(shard)
    assert discovery_key(settings) in store.load_many([discovery_key(settings)])
    blobs: dict[str, Blob] = store.load_blobs([bearer_blob_key(shard), bearer_blob_key()])
    assert set(blobs) == {bearer_blob_key(shard)}
    assert fake_scalingo.api_token not in LOG.getvalue()

    # WHEN the account's token is rotated in SSM (Scalingo refuses the old one), the warm container's next
    # check of that shard uses the new one: re-read at once from the shard's own parameter
    fake_scalingo.api_token = "tk-us-rotated-acme-token"
    fake_scalingo.expire_tokens()
    boto3.client("ssm", endpoint_url=moto_url).put_parameter(
        Name=ACME, Value=fake_scalingo.api_token, Type="SecureString", Overwrite=True
    )
    exchanges = fake_scalingo.count("auth")
    again = app.lambda_handler({"shard": ACME, "id": "again"}, FakeContext(function_name=FUNCTION))  # by name too
    assert (again["shard"], again["checked"], again["unchecked"], again["error"]) == (shard, 6, [], None)
    assert fake_scalingo.count("auth") - exchanges == 2  # the old token refused, the new one accepted
    assert fake_scalingo.api_token not in LOG.getvalue()


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_an_unknown_shard_is_an_error_and_nothing_is_checked(
    handler: tuple[ModuleType, FakeSlack], fake_scalingo: FakeScalingo, fake_lambda: FakeLambda
) -> None:
    app, slack = handler
    with pytest.raises(UnknownShardError, match=rf"no shard 'acme'.*{shard_id(ACME)} \({ACME}\)"):
        app.lambda_handler({"shard": "acme"}, FakeContext(function_name=FUNCTION))
    with pytest.raises(ValueError, match='"databases" needs "shard"'):
        app.lambda_handler({"databases": ["shop-prod/ad-shop"]}, FakeContext(function_name=FUNCTION))
    assert (fake_scalingo.requests, slack.messages(), fake_lambda.invocations) == ([], [], [])


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_without_shards_an_event_naming_one_is_an_error(
    handler: tuple[ModuleType, FakeSlack], monkeypatch: pytest.MonkeyPatch, fake_scalingo: FakeScalingo
) -> None:
    app, _ = handler
    monkeypatch.delenv("SCALINGO_API_TOKEN_PARAMETERS")
    monkeypatch.setenv("SCALINGO_API_TOKEN_PARAMETER", ACME)
    with pytest.raises(UnknownShardError, match="one API token"):
        app.lambda_handler({"shard": shard_id(ACME)}, FakeContext(function_name=FUNCTION))
    assert fake_scalingo.requests == []
