"""template.yaml read as data, as SAM translates it, and as `sam build` built it: each point of the
deployment's contract that can be read without AWS."""

from __future__ import annotations

import ast
import os
import re
import struct
from pathlib import Path
from typing import Any

import pytest

from backup_monitor.config import Settings
from tests.support import cfn

BUILD = cfn.ROOT / ".aws-sam" / "build"
DYNAMODB_CODE = cfn.ROOT / "functions/backup_monitor/backup_monitor/state/dynamodb.py"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return cfn.load()


@pytest.fixture(scope="module")
def translated(template: dict[str, Any]) -> dict[str, Any]:
    return cfn.translate(template)


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def function_statements(translated: dict[str, Any], **parameters: str) -> list[dict[str, Any]]:
    """The role's statements for these parameter values (a statement under Fn::If is there or not)."""
    role = translated["Resources"]["BackupMonitorFunctionRole"]["Properties"]
    evaluator = cfn.Evaluator(translated, **parameters)
    statements = []
    for policy in role["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in statement:
                condition, yes, no = statement["Fn::If"]
                statement = yes if evaluator.condition(condition) else no
            if statement != {"Ref": "AWS::NoValue"}:
                statements.append(statement)
    return statements


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# The parameters every deployment must give (AlarmEmail: an address, or none).
DEPLOYABLE = {"AlarmEmail": "oncall@example.com"}


# -- the alarm topic and the alarms ------------------------------------------------------------------------


def test_the_alarm_topic_is_not_under_the_aws_managed_key(template: dict[str, Any]) -> None:
    # CloudWatch cannot publish to a topic encrypted with alias/aws/sns; the README says why it is unencrypted.
    topic = template["Resources"]["AlarmTopic"]["Properties"]
    assert "KmsMasterKeyId" not in topic


def test_every_alarm_announces_alarm_and_recovery_on_the_topic(template: dict[str, Any]) -> None:
    alarms = resources_of(template, "AWS::CloudWatch::Alarm")
    assert set(alarms) == {
        "HeartbeatAlarm",
        "FunctionErrorsAlarm",
        "FunctionThrottlesAlarm",
        "ScheduleDeadLetterAlarm",
        "DueCheckWaitAlarm",
    }
    for name, alarm in alarms.items():
        props = alarm["Properties"]
        assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert props["OKActions"] == [{"Ref": "AlarmTopic"}], name
        # A queue's visible messages stay until someone empties it: such an alarm would hide later failures.
        assert props.get("MetricName") != "ApproximateNumberOfMessagesVisible", name


@pytest.mark.parametrize("minutes", [5, 10, 15, 30, 60, 120, 360, 720, 1440])
def test_the_schedule_and_the_alarm_periods_follow_one_parameter(template: dict[str, Any], minutes: int) -> None:
    assert template["Parameters"]["CheckEveryMinutes"]["AllowedValues"] == [5, 10, 15, 30, 60, 120, 360, 720, 1440]
    values = cfn.Evaluator(template, CheckEveryMinutes=str(minutes))
    schedule = template["Resources"]["BackupMonitorFunction"]["Properties"]["Events"]["Schedule"]["Properties"]
    assert values.value(schedule["ScheduleExpression"]) == f"rate({minutes} minutes)"
    for name, alarm in resources_of(template, "AWS::CloudWatch::Alarm").items():
        props = alarm["Properties"]
        periods = [values.value(m["MetricStat"]["Period"]) for m in props.get("Metrics", []) if "MetricStat" in m]
        period = values.value(props["Period"]) if "Period" in props else periods[0]
        assert set(periods) <= {period}, name
        assert period == minutes * 60, name
        # CloudWatch: Period x EvaluationPeriods <= 1 day when Period < 1 hour, <= 7 days otherwise.
        assert period * props["EvaluationPeriods"] <= (86_400 if period < 3_600 else 604_800), name


def due_alarm_fires(template: dict[str, Any], oldest_due_minutes: float, **parameters: str) -> bool:
    """Whether the DueCheckWaitAlarm fires for this OldestDueMinutes maximum: its metric math evaluated (the
    one shape it has, `oldest - 60 * <grace hours>`) and compared with its threshold."""
    values = cfn.Evaluator(template, **parameters)
    alarm = template["Resources"]["DueCheckWaitAlarm"]["Properties"]
    (stat,) = [m for m in alarm["Metrics"] if "MetricStat" in m]
    (math,) = [m for m in alarm["Metrics"] if m.get("ReturnData")]
    assert not stat["ReturnData"]
    metric = stat["MetricStat"]["Metric"]
    assert (metric["MetricName"], stat["MetricStat"]["Stat"]) == ("OldestDueMinutes", "Maximum")
    expression = values.value(math["Expression"])
    match = re.fullmatch(rf"{stat['Id']} - 60 \* ([0-9.]+)", expression)
    assert match, expression
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    return oldest_due_minutes - 60 * float(match.group(1)) > float(values.value(alarm["Threshold"]))


@pytest.mark.parametrize("minutes", [5, 15, 60, 1440])
@pytest.mark.parametrize("grace", ["0", "3", "5.5", "23.99"])
def test_the_due_check_alarm_fires_past_the_grace_plus_two_periods(
    template: dict[str, Any], minutes: int, grace: str
) -> None:
    # Issue 18: a due database waiting longer than MISSING_BACKUP_GRACE_HOURS + 2 periods; issue 19: whatever
    # the grace deployed (it was 3 h whatever MissingBackupGraceHours said).
    parameters = {"CheckEveryMinutes": str(minutes), "MissingBackupGraceHours": grace}
    limit = 60 * float(grace) + 2 * minutes
    assert not due_alarm_fires(template, limit, **parameters)
    assert due_alarm_fires(template, limit + 1, **parameters)
    assert Settings.from_env(lambda_env(template, **parameters)).policy.missing_grace_hours == float(grace)
    alarm = template["Resources"]["DueCheckWaitAlarm"]["Properties"]
    assert alarm["TreatMissingData"] == "notBreaching"  # no check at all is the heartbeat's


def test_the_heartbeat_is_this_stacks_and_missing_checks_breach(template: dict[str, Any]) -> None:
    heartbeat = template["Resources"]["HeartbeatAlarm"]["Properties"]
    assert heartbeat["MetricName"] == "ChecksCompleted"
    assert heartbeat["TreatMissingData"] == "breaching"
    assert heartbeat["EvaluationPeriods"] == heartbeat["DatapointsToAlarm"] == 3
    # Powertools puts the service name in the metric's dimension: the stack's name keeps two stacks apart.
    service = template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
    assert service == {"Ref": "AWS::StackName"}
    assert heartbeat["Dimensions"] == [{"Name": "service", "Value": {"Ref": "AWS::StackName"}}]
    errors = template["Resources"]["FunctionErrorsAlarm"]["Properties"]
    assert (errors["MetricName"], errors["EvaluationPeriods"], errors["DatapointsToAlarm"]) == ("Errors", 2, 2)


def test_no_alarm_watches_the_failure_queue(template: dict[str, Any]) -> None:
    # The errors alarm covers failed runs; the queue keeps their details (README: how to read and empty it).
    for name, alarm in resources_of(template, "AWS::CloudWatch::Alarm").items():
        assert "FailureQueue" not in str(alarm["Properties"]), name


# -- the schedule -------------------------------------------------------------------------------------------


def test_the_schedule_is_named_after_the_stack(translated: dict[str, Any]) -> None:
    (schedule,) = resources_of(translated, "AWS::Scheduler::Schedule").values()
    name = schedule["Properties"]["Name"]["Fn::Sub"]
    assert name.startswith("${AWS::StackName}")
    # Lambda names the function after the stack within 64 characters, which bounds the stack's name; the
    # schedule's name must fit the same 64 for any stack that can be created.
    function = translated["Resources"]["BackupMonitorFunction"]["Properties"]["FunctionName"]["Fn::Sub"]
    assert function.startswith("${AWS::StackName}")
    longest_stack = 64 - len(function.removeprefix("${AWS::StackName}"))
    assert longest_stack + len(name.removeprefix("${AWS::StackName}")) <= 64


# -- Slack: webhook or bot, chosen at deploy time ---------------------------------------------------------------


def lambda_env(template: dict[str, Any], **parameters: str) -> dict[str, str]:
    """The function's environment for these parameter values (a variable under AWS::NoValue is absent)."""
    values = cfn.Evaluator(template, **parameters)
    env = values.value(template["Resources"]["BackupMonitorFunction"]["Properties"]["Environment"]["Variables"])
    return {k: str(v) for k, v in env.items()}


def resolved_settings(template: dict[str, Any], **parameters: str) -> Settings:
    return Settings.from_env(lambda_env(template, **parameters))


def test_the_defaults_deploy_the_webhook_path(template: dict[str, Any]) -> None:
    assert cfn.Evaluator(template, **DEPLOYABLE).rule_failures() == []
    settings = resolved_settings(template)
    assert settings.slack_webhook_url_parameter == "/backup-monitor/slack-webhook-url"
    assert settings.slack_bot_token_parameter is None
    assert settings.api_token_parameter == "/backup-monitor/scalingo-api-token"


def test_the_bot_path_needs_only_the_choice_and_a_channel(template: dict[str, Any]) -> None:
    choice = {"SlackDelivery": "bot", "SlackChannel": "C0123456789", **DEPLOYABLE}
    assert cfn.Evaluator(template, **choice).rule_failures() == []
    settings = resolved_settings(template, **choice)
    assert settings.slack_bot_token_parameter == "/backup-monitor/slack-bot-token"
    assert settings.slack_webhook_url_parameter is None
    assert settings.slack_channel == "C0123456789"


@pytest.mark.parametrize(
    ("parameters", "refusal"),
    [
        ({"SlackDelivery": "bot"}, "needs SlackChannel"),
        ({"SlackChannel": "C0123456789"}, "SlackChannel is for the bot"),
        (
            {
                "SlackDelivery": "bot",
                "SlackChannel": "C1",
                "SlackBotTokenParameter": "/backup-monitor/slack-webhook-url",
            },
            "cannot be the same SSM parameter",
        ),
    ],
)
def test_the_rules_refuse_a_half_chosen_slack_path(
    template: dict[str, Any], parameters: dict[str, str], refusal: str
) -> None:
    failures = cfn.Evaluator(template, **parameters, **DEPLOYABLE).rule_failures()
    assert len(failures) == 1
    assert refusal in failures[0]


# -- least privilege ------------------------------------------------------------------------------------------


def dynamodb_calls_in_code() -> set[str]:
    """The DynamoDB client methods state/dynamodb.py calls, as IAM actions (batch_get_item -> BatchGetItem)."""
    tree = ast.parse(DYNAMODB_CODE.read_text())
    calls = {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Attribute)
        and node.func.value.attr == "_client"
    }
    return {"dynamodb:" + "".join(part.title() for part in call.split("_")) for call in calls}


def test_the_function_may_call_what_the_state_store_calls_on_its_table_only(translated: dict[str, Any]) -> None:
    statements = function_statements(translated)
    dynamodb = [s for s in statements if any(str(a).startswith("dynamodb:") for a in as_list(s["Action"]))]
    assert len(dynamodb) == 1
    assert set(as_list(dynamodb[0]["Action"])) == dynamodb_calls_in_code()
    assert {"dynamodb:BatchGetItem", "dynamodb:PutItem"} <= dynamodb_calls_in_code()
    assert dynamodb[0]["Resource"] == {"Fn::GetAtt": ["StateTable", "Arn"]}
    for statement in statements:
        assert "*" not in str(statement["Action"])
        # X-Ray's two actions have no resource-level permissions (test_the_role_grants_exactly...).
        assert statement["Resource"] != "*" or statement["Sid"] == "SendTraces"


def test_the_function_sends_only_to_its_failure_queue(translated: dict[str, Any]) -> None:
    sqs = [s for s in function_statements(translated) if "sqs:" in str(s["Action"])]
    # One statement, for the OnFailure destination (the code sends nothing itself).
    failure_queue = {"Fn::GetAtt": ["FailureQueue", "Arn"]}
    assert sqs == [
        {"Sid": "SendFailuresToOwnQueue", "Action": "sqs:SendMessage", "Effect": "Allow", "Resource": failure_queue}
    ]
    destination = translated["Resources"]["BackupMonitorFunction"]["Properties"]
    assert destination["Role"] == {"Fn::GetAtt": ["BackupMonitorFunctionRole", "Arn"]}
    assert "SQSSendMessagePolicy" not in str(cfn.load()["Resources"]["BackupMonitorFunction"])


def test_the_function_reads_and_decrypts_only_its_own_parameters_through_ssm(
    template: dict[str, Any], translated: dict[str, Any]
) -> None:
    statements = {s.get("Sid"): s for s in function_statements(translated)}
    webhook = cfn.Evaluator(template)
    bot = cfn.Evaluator(template, SlackDelivery="bot", SlackChannel="C1")
    arn = "arn:aws:ssm:eu-west-3:123456789012:parameter/backup-monitor/"
    read = statements["ReadOwnSecrets"]
    assert read["Action"] == "ssm:GetParameter"
    assert webhook.value(read["Resource"]) == [arn + "scalingo-api-token", arn + "slack-webhook-url"]
    assert bot.value(read["Resource"]) == [arn + "scalingo-api-token", arn + "slack-bot-token"]

    decrypt = statements["DecryptSecretsThroughSsm"]
    assert decrypt["Action"] == "kms:Decrypt"
    # Never the alias ARN (an alias never matches as a Resource); any of the account's keys, but only via SSM.
    assert webhook.value(decrypt["Resource"]) == "arn:aws:kms:eu-west-3:123456789012:key/*"
    assert webhook.value(decrypt["Condition"]) == {"StringEquals": {"kms:ViaService": "ssm.eu-west-3.amazonaws.com"}}
    key = "arn:aws:kms:eu-west-3:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    assert cfn.Evaluator(template, SecretsKmsKeyArn=key).value(decrypt["Resource"]) == key


# -- token shards (SCALINGO_API_TOKEN_PARAMETERS) ---------------------------------------------------------------

SHARDS = "/backup-monitor/acme/scalingo-token,/backup-monitor/globex/scalingo-token"
SSM_ARN = "arn:aws:ssm:eu-west-3:123456789012:parameter"


def shard_pattern(template: dict[str, Any]) -> re.Pattern[str]:
    return re.compile(template["Parameters"]["ScalingoApiTokenParameters"]["AllowedPattern"])


def test_without_token_shards_nothing_changes(template: dict[str, Any], translated: dict[str, Any]) -> None:
    statements = {s.get("Sid") for s in function_statements(translated)}
    assert "ReadShardTokens" not in statements
    assert "InvokeOwnShardChecks" not in statements
    assert not any("lambda:" in str(s["Action"]) for s in function_statements(translated))
    function = cfn.Evaluator(template).value(template["Resources"]["BackupMonitorFunction"]["Properties"])
    assert "ReservedConcurrentExecutions" not in function  # off by default (issue 19)
    settings = resolved_settings(template)
    assert (settings.api_token_parameters, settings.shards) == ((), {})


def test_token_shards_read_each_listed_parameter_exactly_and_may_invoke_the_function_itself(
    template: dict[str, Any], translated: dict[str, Any]
) -> None:
    evaluator = cfn.Evaluator(translated, ScalingoApiTokenParameters=SHARDS)
    statements = {s.get("Sid"): s for s in function_statements(translated, ScalingoApiTokenParameters=SHARDS)}
    # The single token's parameter is no longer read; each shard's is, by its exact ARN.
    assert evaluator.value(statements["ReadOwnSecrets"]["Resource"]) == [f"{SSM_ARN}/backup-monitor/slack-webhook-url"]
    shards = statements["ReadShardTokens"]
    assert (shards["Effect"], shards["Action"]) == ("Allow", "ssm:GetParameter")
    assert set(evaluator.value(shards["Resource"])) == {SSM_ARN + name for name in SHARDS.split(",")}
    invoke = statements["InvokeOwnShardChecks"]
    assert (invoke["Effect"], invoke["Action"]) == ("Allow", "lambda:InvokeFunction")
    # The function's own name (FunctionName: ${AWS::StackName}-monitor), built without a reference to it.
    assert evaluator.value(invoke["Resource"]) == "arn:aws:lambda:eu-west-3:123456789012:function:bm-test-monitor"
    assert "BackupMonitorFunction" not in str(invoke["Resource"])
    function = cfn.Evaluator(template, ScalingoApiTokenParameters=SHARDS).value(
        template["Resources"]["BackupMonitorFunction"]["Properties"]
    )
    assert "ReservedConcurrentExecutions" not in function  # the shards' checks run side by side
    settings = resolved_settings(template, ScalingoApiTokenParameters=SHARDS)
    assert settings.api_token_parameter is None
    assert list(settings.shards.values()) == SHARDS.split(",")


def test_up_to_ten_shards_are_each_granted_and_an_eleventh_is_refused(
    template: dict[str, Any], translated: dict[str, Any]
) -> None:
    names = [f"/bm/account-{i}/token" for i in range(11)]
    pattern = shard_pattern(template)
    assert pattern.fullmatch(",".join(names[:10]))
    assert not pattern.fullmatch(",".join(names))
    for count in (1, 3, 10):
        listed = ",".join(names[:count])
        evaluator = cfn.Evaluator(translated, ScalingoApiTokenParameters=listed)
        statements = {s.get("Sid"): s for s in function_statements(translated, ScalingoApiTokenParameters=listed)}
        assert set(evaluator.value(statements["ReadShardTokens"]["Resource"])) == {
            SSM_ARN + name for name in names[:count]
        }
        assert len(resolved_settings(template, ScalingoApiTokenParameters=listed).shards) == count


def test_token_shards_refuse_a_list_of_databases(template: dict[str, Any]) -> None:
    assert cfn.Evaluator(template, ScalingoApiTokenParameters=SHARDS, **DEPLOYABLE).rule_failures() == []
    failures = cfn.Evaluator(
        template, ScalingoApiTokenParameters=SHARDS, MonitoredDatabases="a/ad-1", **DEPLOYABLE
    ).rule_failures()
    assert len(failures) == 1
    assert "leave MonitoredDatabases empty" in failures[0]


@pytest.mark.parametrize("value", ["bm/token", "/bm/a, /bm/b", "/bm/a,,/bm/b", "/bm/a,", "/bm/token name"])
def test_the_shard_parameter_refuses_what_the_names_cannot_be(template: dict[str, Any], value: str) -> None:
    assert not shard_pattern(template).fullmatch(value)


# -- the build ------------------------------------------------------------------------------------------------


def built(path: str) -> Path:
    directory = BUILD / path
    if not directory.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{directory} is missing: `make template` (sam build) runs before pytest")
        pytest.skip("no `sam build` output: run `make template`")
    return directory


def pyc_flags(source: Path) -> int | None:
    """The flags word of the source's CPython 3.13 .pyc (1 = unchecked hash), or None when there is none."""
    pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
    if not pyc.is_file():
        return None
    with pyc.open("rb") as handle:
        flags: int = struct.unpack("<4sI", handle.read(8))[1]
    return flags


def test_the_built_function_ships_unchecked_hash_bytecode(template: dict[str, Any]) -> None:
    for name in ("BackupMonitorFunction", "DependenciesLayer"):
        assert template["Resources"][name]["Metadata"]["BuildMethod"] == "makefile"
    function = built("BackupMonitorFunction")
    sources = sorted(function.rglob("*.py"))
    assert function / "app.py" in sources
    assert {pyc_flags(source) for source in sources} == {1}
    assert not list(function.glob("*.egg-info"))
    # the fake Scalingo and the demo stay out of the Lambda's artifact
    assert not (function / "backup_monitor" / "fakes").exists()
    assert not (function / "backup_monitor" / "demo.py").exists()


def test_the_built_layer_ships_bytecode_and_leaves_boto_to_the_runtime() -> None:
    layer = built("DependenciesLayer") / "python"
    for package in ("requests", "slack_sdk", "aws_lambda_powertools", "aws_xray_sdk", "wrapt"):
        assert (layer / package).is_dir(), package
    for package in ("botocore", "boto3", "s3transfer"):
        assert not (layer / package).exists(), f"{package} would shadow the runtime's copy"
    sources = sorted(layer.rglob("*.py"))
    assert len(sources) > 100
    assert {pyc_flags(source) for source in sources} == {1}
