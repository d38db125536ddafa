"""The secret reader on moto's SSM server: the cache age, forced re-reads (rate-limited), errors naming SSM's
reason and never a value."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.exceptions import ClientError

from backup_monitor.config import ConfigError
from backup_monitor.secrets import SecretReader, describe
from tests.support.moto import moto_server

if TYPE_CHECKING:
    from mypy_boto3_ssm.client import SSMClient


@pytest.fixture(scope="module")
def ssm_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def ssm(ssm_url: str, monkeypatch: pytest.MonkeyPatch) -> SSMClient:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", ssm_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    return boto3.client("ssm", endpoint_url=ssm_url)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def put(ssm: SSMClient, name: str, value: str) -> None:
    ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)


def test_a_value_is_cached_and_a_forced_read_asks_ssm_at_most_every_interval(ssm: SSMClient) -> None:
    clock = Clock()
    reader = SecretReader(max_age=300, forced_interval=30, clock=clock)
    put(ssm, "/t/token", "first")
    assert reader.read("/t/token", "X") == "first"
    put(ssm, "/t/token", "second")
    assert reader.read("/t/token", "X") == "first"  # within the cache age
    assert reader.read("/t/token", "X", force=True) == "second"
    put(ssm, "/t/token", "third")
    clock.now += 10
    assert reader.read("/t/token", "X", force=True) == "second"  # forced again too soon: the cached value
    clock.now += 30
    assert reader.read("/t/token", "X", force=True) == "third"


def test_a_missing_or_empty_parameter_is_a_config_error_naming_it(ssm: SSMClient) -> None:
    reader = SecretReader()
    with pytest.raises(ConfigError, match=r"^SLACK_BOT_TOKEN_PARAMETER: cannot read SSM parameter '/t/none' "):
        reader.read("/t/none", "SLACK_BOT_TOKEN_PARAMETER")
    put(ssm, "/t/blank", "   ")
    with pytest.raises(ConfigError, match="is empty"):
        reader.read("/t/blank", "X")


def test_the_reason_is_ssms_code_and_message() -> None:
    denied = ClientError(
        {
            "Error": {
                "Code": "AccessDeniedException",
                "Message": "User: arn:aws:sts::123456789012:assumed-role/r/f is not authorized to perform:\n"
                "kms:Decrypt on resource: arn:aws:kms:eu-west-3:123456789012:key/k",
            }
        },
        "GetParameter",
    )
    try:
        try:
            raise denied
        except ClientError as inner:
            raise RuntimeError(str(inner))  # noqa: B904 - as Powertools does: the cause is only the context
    except RuntimeError as wrapped:
        reason = describe(wrapped)
    assert reason.startswith("AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/r/f")
    assert "kms:Decrypt on resource" in reason
    assert "\n" not in reason
    assert describe(ClientError({"Error": {"Code": "ParameterNotFound"}}, "GetParameter")) == "ParameterNotFound"
