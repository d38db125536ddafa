"""Deploy rehearsal, offline: SAM's translation of template.yaml created twice (two stacks, one account and
region) on moto's CloudFormation emulation (server mode, loopback).

moto creates the table, the queues, the topic, the roles, the layer, the log group and the function; it has no
CloudFormation support for AWS::CloudWatch::Alarm, AWS::Scheduler::Schedule, AWS::SNS::Subscription and
AWS::Lambda::EventInvokeConfig (it skips them), nor for AWS::Lambda::Url (the Slack endpoint's Function URL), so
those are checked by test_template.py only. A third stack, with token shards and the Slack endpoint, shows both
roles granted each shard's token.
"""

from __future__ import annotations

import ast
import io
import json
import re
import time
import warnings
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.support import cfn
from tests.support.moto import moto_server

NOT_EMULATED = {
    "AWS::CloudWatch::Alarm",
    "AWS::Scheduler::Schedule",
    "AWS::SNS::Subscription",
    "AWS::Lambda::EventInvokeConfig",
}


@pytest.fixture(scope="module")
def moto(monkeypatch_module: pytest.MonkeyPatch) -> Iterator[str]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": cfn.PSEUDO["AWS::Region"],
    }.items():
        monkeypatch_module.setenv(key, value)
    with moto_server() as url:
        yield url


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def deploy(url: str, body: str, name: str, **parameters: str) -> dict[str, Any]:
    cloudformation = boto3.client("cloudformation", endpoint_url=url)
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=body,
        Capabilities=["CAPABILITY_IAM"],
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
    )
    deadline = time.monotonic() + 60
    while True:
        stack: dict[str, Any] = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        if not stack["StackStatus"].endswith("IN_PROGRESS") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    return {
        r["LogicalResourceId"]: r
        for r in cloudformation.list_stack_resources(StackName=name)["StackResourceSummaries"]
        if r.get("LogicalResourceId")
    }


def role_statements(iam: Any, role: str) -> dict[str, Any]:
    """The statements of the role's inline policies, by Sid."""
    policies = [
        iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        for name in iam.list_role_policies(RoleName=role)["PolicyNames"]
    ]
    # moto keeps a policy document as the text of a Python dict (and AWS::NoValue in a list as None)
    documents = [ast.literal_eval(p) if isinstance(p, str) else p for p in policies]
    return {s.get("Sid"): s for policy in documents for s in policy["Statement"] if s is not None}


def test_two_stacks_deploy_side_by_side(moto: str) -> None:
    s3 = boto3.client("s3", endpoint_url=moto)
    s3.create_bucket(Bucket="bucket", CreateBucketConfiguration={"LocationConstraint": cfn.PSEUDO["AWS::Region"]})
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("app.py", "def lambda_handler(event, context):\n    return {}\n")
    for key in ("CodeUri", "ContentUri"):
        s3.put_object(Bucket="bucket", Key=key, Body=archive.getvalue())
    translated = cfn.translate(cfn.load())
    body = json.dumps(translated)
    # (Chatbot's channel and role: only with AlarmSlackWorkspaceId and AlarmSlackChannelId, given to neither)
    expected = {
        name
        for name, r in translated["Resources"].items()
        if r["Type"] not in NOT_EMULATED and r.get("Condition") not in ("HasChatbot", "Interactive", "HasTokenShards")
    }

    with warnings.catch_warnings(record=True) as skipped:
        warnings.simplefilter("always")
        first = deploy(moto, body, "bm-first", AlarmEmail="oncall@example.com", DailyReportAt="", ExcludeApps="none")
        second = deploy(moto, body, "bm-second", AlarmEmail="none", SlackDelivery="bot", SlackChannel="C0123456789")
    unsupported = {m.group(1) for w in skipped if (m := re.search(r"parse (AWS::\S+) but", str(w.message)))}
    assert unsupported == NOT_EMULATED  # what stopped the rehearsal short of a full deployment

    for stack in (first, second):
        created = {name for name, r in stack.items() if r["ResourceStatus"] == "CREATE_COMPLETE" and name in expected}
        assert created == expected
    lambda_ = boto3.client("lambda", endpoint_url=moto)
    one = lambda_.get_function(FunctionName="bm-first-monitor")["Configuration"]
    two = lambda_.get_function(FunctionName="bm-second-monitor")["Configuration"]
    assert one["Environment"]["Variables"]["SLACK_WEBHOOK_URL_PARAMETER"] == "/backup-monitor/slack-webhook-url"
    assert one["Environment"]["Variables"]["SLACK_BOT_TOKEN_PARAMETER"] == ""
    assert two["Environment"]["Variables"]["SLACK_BOT_TOKEN_PARAMETER"] == "/backup-monitor/slack-bot-token"
    assert two["Environment"]["Variables"]["SLACK_CHANNEL"] == "C0123456789"
    assert one["Environment"]["Variables"]["STATE_TABLE"] != two["Environment"]["Variables"]["STATE_TABLE"]
    assert (one["Runtime"], one["Timeout"], one["MemorySize"]) == ("python3.13", 900, 512)
    # the settings reach the function: an empty parameter leaves its variable out (the code's default)
    assert "DAILY_REPORT_AT" not in one["Environment"]["Variables"]
    assert one["Environment"]["Variables"]["EXCLUDE_APPS"] == ""
    assert two["Environment"]["Variables"]["DAILY_REPORT_AT"] == "08:00 UTC"
    assert str(two["Environment"]["Variables"]["MISSING_BACKUP_GRACE_HOURS"]) == "3"  # moto keeps a Number as one
    assert one["Environment"]["Variables"]["POWERTOOLS_LOG_LEVEL"] == "INFO"
    # the function's own role: no managed policy, its log group and the two X-Ray calls
    iam = boto3.client("iam", endpoint_url=moto)
    role = first["BackupMonitorFunctionRole"]["PhysicalResourceId"]
    assert one["Role"].endswith("/" + role)
    assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
    statements = role_statements(iam, role)
    logs = boto3.client("logs", endpoint_url=moto).describe_log_groups(logGroupNamePrefix="/aws/lambda/bm-first-")
    (group,) = logs["logGroups"]
    assert statements["WriteOwnLogs"]["Resource"] == group["arn"]
    assert set(statements["SendTraces"]["Action"]) == {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
    assert statements["SendFailuresToOwnQueue"]["Action"] == "sqs:SendMessage"
    table = boto3.client("dynamodb", endpoint_url=moto).describe_table(
        TableName=one["Environment"]["Variables"]["STATE_TABLE"]
    )["Table"]
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]


def test_a_stack_with_token_shards_deploys_with_each_token_granted(moto: str) -> None:
    s3 = boto3.client("s3", endpoint_url=moto)
    if "bucket" not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket="bucket", CreateBucketConfiguration={"LocationConstraint": cfn.PSEUDO["AWS::Region"]})
        for key in ("CodeUri", "ContentUri"):
            archive = io.BytesIO()
            with zipfile.ZipFile(archive, "w") as zipped:
                zipped.writestr("app.py", "def lambda_handler(event, context):\n    return {}\n")
            s3.put_object(Bucket="bucket", Key=key, Body=archive.getvalue())
    shards = "/bm/acme/token,/bm/globex/token"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        translated = cfn.translate(cfn.load())
        # moto has no AWS::Lambda::Url (it skips it): the output naming its URL cannot be read there
        del translated["Outputs"]["InteractionsUrl"]
        resources = deploy(
            moto,
            json.dumps(translated),
            "bm-shards",
            ScalingoApiTokenParameters=shards,
            AlarmEmail="none",
            SlackInteractivity="enabled",
        )
    function = boto3.client("lambda", endpoint_url=moto).get_function(FunctionName="bm-shards-monitor")
    variables = function["Configuration"]["Environment"]["Variables"]
    assert variables["SCALINGO_API_TOKEN_PARAMETERS"] == shards
    assert variables["SCALINGO_API_TOKEN_PARAMETER"] == ""
    iam = boto3.client("iam", endpoint_url=moto)
    statements = role_statements(iam, resources["BackupMonitorFunctionRole"]["PhysicalResourceId"])
    arn = "arn:aws:ssm:eu-west-3:123456789012:parameter"
    assert set(statements["ReadShardTokens"]["Resource"]) == {arn + "/bm/acme/token", arn + "/bm/globex/token"}
    # the interactivity endpoint (a download click reads the database's shard token) is granted the same
    assert variables["SLACK_INTERACTIVE"] == "true"
    endpoint = boto3.client("lambda", endpoint_url=moto).get_function(FunctionName="bm-shards-interactions")
    assert endpoint["Configuration"]["Environment"]["Variables"]["SCALINGO_API_TOKEN_PARAMETERS"] == shards
    assert (endpoint["Configuration"]["Timeout"], endpoint["Configuration"]["MemorySize"]) == (10, 256)
    granted = role_statements(iam, resources["InteractionsFunctionRole"]["PhysicalResourceId"])
    assert set(granted["ReadShardTokens"]["Resource"]) == {arn + "/bm/acme/token", arn + "/bm/globex/token"}
    assert "InvokeOwnShardChecks" not in granted
    assert (
        iam.list_attached_role_policies(RoleName=resources["InteractionsFunctionRole"]["PhysicalResourceId"])[
            "AttachedPolicies"
        ]
        == []
    )
    assert statements["InvokeOwnShardChecks"]["Resource"] == (
        "arn:aws:lambda:eu-west-3:123456789012:function:bm-shards-monitor"
    )
