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
from backup_monitor.variables import COMMAND, LAMBDA_VARIABLES, VARIABLES
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


def function_statements(
    translated: dict[str, Any], role_name: str = "BackupMonitorFunctionRole", **parameters: str
) -> list[dict[str, Any]]:
    """The role's statements for these parameter values (a statement under Fn::If is there or not), its own
    and those of the stack's AWS::IAM::Policy resources attached to it (when their condition holds)."""
    role = translated["Resources"][role_name]["Properties"]
    evaluator = cfn.Evaluator(translated, **parameters)
    statements = []
    attached = [
        resource["Properties"]
        for resource in translated["Resources"].values()
        if resource["Type"] == "AWS::IAM::Policy"
        and ("Condition" not in resource or evaluator.condition(resource["Condition"]))
        and f"<{role_name}>" in evaluator.value(resource["Properties"]["Roles"])  # a Ref to a resource, as evaluated
    ]
    for policy in [*role["Policies"], *attached]:
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


def lambda_env(template: dict[str, Any], function: str = "BackupMonitorFunction", **parameters: str) -> dict[str, str]:
    """The function's environment for these parameter values (a variable under AWS::NoValue is absent)."""
    values = cfn.Evaluator(template, **parameters)
    env = values.value(template["Resources"][function]["Properties"]["Environment"]["Variables"])
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


# -- every setting reachable from sam deploy (issue 19) ---------------------------------------------------------

# The variables the deployed function takes from the template, and those it does not (a local state file, the
# secrets in clear: the function reads SSM; the time limit: it uses its remaining time; the test endpoints; the
# command's log level: Powertools reads POWERTOOLS_LOG_LEVEL), from the list of variables the docs are made of.
LAMBDA_SETTINGS = set(LAMBDA_VARIABLES)
NOT_FOR_LAMBDA = {v.name for v in VARIABLES if v.where == COMMAND}
CONFIG_CODE = cfn.ROOT / "functions/backup_monitor/backup_monitor/config.py"


def variables_read_by_settings() -> set[str]:
    """The variable names Settings.from_env passes to its reader (reader.number("NAME", ...), ...)."""
    tree = ast.parse(CONFIG_CODE.read_text())
    (from_env,) = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "from_env"]
    return {
        node.args[0].value
        for node in ast.walk(from_env)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "reader"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    }


def test_every_lambda_setting_has_a_template_variable(template: dict[str, Any]) -> None:
    # Every optional variable present (a report time and an exclusion given).
    given = {"DailyReportAt": "09:00 Europe/Paris", "ExcludeApps": "staging-*", "SlackInteractivity": "enabled"}
    monitor = set(lambda_env(template, **given))
    interactions = set(lambda_env(template, "InteractionsFunction", **given))
    variables = monitor | interactions
    assert variables == LAMBDA_SETTINGS
    # the endpoint's own settings reach the endpoint only; the buttons' switch reaches the checks
    assert {"SLACK_SIGNING_SECRET_PARAMETER", "DOWNLOAD_ALLOWED_USERS"} <= interactions - monitor
    assert "SLACK_INTERACTIVE" in monitor
    # A variable the settings start reading is on one list or the other: a test fails until it is.
    assert variables_read_by_settings() == LAMBDA_SETTINGS | NOT_FOR_LAMBDA - {"LOG_LEVEL"}
    assert len(variables_read_by_settings()) > 30


def test_each_new_setting_has_its_own_described_parameter(template: dict[str, Any]) -> None:
    variables = template["Resources"]["BackupMonitorFunction"]["Properties"]["Environment"]["Variables"]
    for name, value in variables.items():
        refs = re.findall(r"'Ref': '(\w+)'", str(value))
        parameters = [r for r in refs if r in template["Parameters"]]
        if name == "SLACK_INTERACTIVE":  # SlackInteractivity's condition: true with the endpoint deployed
            assert value == {"Fn::If": ["Interactive", "true", "false"]}
            parameters = ["SlackInteractivity"]
        if name != "STATE_TABLE":
            assert parameters, name
        for parameter in parameters:
            assert template["Parameters"][parameter].get("Description"), parameter


def test_the_template_defaults_are_the_codes_defaults(template: dict[str, Any]) -> None:
    deployed = resolved_settings(template)
    # the same settings as a bare environment naming the two parameters
    bare = Settings.from_env(
        {
            "SCALINGO_API_TOKEN_PARAMETER": "/backup-monitor/scalingo-api-token",
            "SLACK_WEBHOOK_URL_PARAMETER": "/backup-monitor/slack-webhook-url",
            "STATE_TABLE": "<StateTable>",
        }
    )
    assert deployed == bare
    assert template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}
    assert template["Parameters"]["LogLevel"]["Default"] == "INFO"


def test_an_empty_parameter_means_the_codes_default_and_words_say_off_or_none(template: dict[str, Any]) -> None:
    defaults = Settings.from_env({"SCALINGO_API_TOKEN": "x"})
    empty = lambda_env(template, DailyReportAt="", ExcludeApps="")
    assert "DAILY_REPORT_AT" not in empty
    assert "EXCLUDE_APPS" not in empty
    settings = Settings.from_env(empty)
    assert settings.daily_report == defaults.daily_report is not None
    assert settings.exclude_apps == defaults.exclude_apps != ()
    words = resolved_settings(template, DailyReportAt="off", ExcludeApps="none")
    assert (words.daily_report, words.exclude_apps) == (None, ())
    given = resolved_settings(template, DailyReportAt="09:30 Europe/Paris", ExcludeApps="staging-*, *-tmp")
    assert str(given.daily_report) == "09:30 Europe/Paris"
    assert given.exclude_apps == ("staging-*", "*-tmp")
    # the string parameters whose empty value the code reads as unset
    for parameter in ("RunbookUrl", "SlackSuccessChannel", "SlackSuccessWebhookUrlParameter", "SlackMention"):
        assert template["Parameters"][parameter]["Default"] == ""
    assert resolved_settings(template).runbook_url is None


# (parameter, variable, a value below the code's range or None, a value above it or None)
RANGES = [
    ("MissingBackupGraceHours", "MISSING_BACKUP_GRACE_HOURS", "-0.01", "24"),
    ("StuckBackupHours", "STUCK_BACKUP_HOURS", "0.49", "24.01"),
    ("SizeDropRatio", "SIZE_DROP_RATIO", "-0.01", "0.96"),
    ("RemindEveryHours", "REMIND_EVERY_HOURS", "-1", "720.5"),
    ("LookbackHours", "LOOKBACK_HOURS", "-1", "2160.5"),
    ("PitrMaxLagHours", "PITR_MAX_LAG_HOURS", "0.49", "168.5"),
    ("DiscoveryEveryHours", "DISCOVERY_EVERY_HOURS", "-1", "168.5"),
    ("SweepEveryHours", "SWEEP_EVERY_HOURS", "-1", "24.5"),
    ("HttpTimeoutSeconds", "HTTP_TIMEOUT_SECONDS", "0.09", "120.5"),
    ("VerifyArchivesEveryDays", "VERIFY_ARCHIVES_EVERY_DAYS", "-1", "366.5"),
    ("VerifyMaxGb", "VERIFY_MAX_GB", "0.0009", "1000.5"),
    ("GroupWaitSeconds", "GROUP_WAIT_SECONDS", "-1", "120.5"),
]


@pytest.mark.parametrize(("parameter", "variable", "below", "above"), RANGES)
def test_a_number_parameters_range_is_the_codes(
    template: dict[str, Any], parameter: str, variable: str, below: str, above: str
) -> None:
    from backup_monitor.config import ConfigError

    spec = template["Parameters"][parameter]
    assert spec["Type"] == "Number"
    for edge in (spec["MinValue"], spec["MaxValue"]):  # CloudFormation accepts them: so does the code
        env = lambda_env(template, **{parameter: str(edge)})
        assert env[variable] == str(edge)
        Settings.from_env(env)
    for outside in (below, above):  # just outside: CloudFormation refuses it, and so would the code
        assert not spec["MinValue"] <= float(outside) <= spec["MaxValue"]
        with pytest.raises(ConfigError) as refused:
            Settings.from_env(lambda_env(template, **{parameter: outside}))
        assert refused.value.variable == variable


@pytest.mark.parametrize(
    ("parameter", "variable", "accepted", "refused"),
    [
        ("MaxWorkers", "MAX_WORKERS", ["1", "8", "64"], ["0", "65", "8.5", " 8", ""]),
        ("ScalingoApiRateLimit", "SCALINGO_API_RATE_LIMIT", ["1", "40", "100000"], ["0", "100001", "4e1", ""]),
        ("DailyReportAt", "DAILY_REPORT_AT", ["", "off", "08:00 UTC", "9:30 Europe/Paris"], ["24:00 UTC", "08:00"]),
        ("ExcludeApps", "EXCLUDE_APPS", ["", "none", "*-pr[0-9]*", "a-*,b", "a-* , b"], ["a b", "a/b", "a,,b"]),
        (
            "RunbookUrl",
            "RUNBOOK_URL",
            ["", "https://wiki.example.com/runbook?page=1#db"],
            ["http://x.example", "ftp://x"],
        ),
        ("AlarmEmail", "", ["", "none", "oncall@example.com"], ["oncall", "a@b", "a@b.c,d@e.f"]),
    ],
)
def test_a_patterned_parameter_accepts_what_the_code_accepts(
    template: dict[str, Any], parameter: str, variable: str, accepted: list[str], refused: list[str]
) -> None:
    # What CloudFormation lets through, the function accepts at start; the pattern may be stricter.
    pattern = re.compile(template["Parameters"][parameter]["AllowedPattern"])
    for value in accepted:
        assert pattern.fullmatch(value), value
        if variable:
            Settings.from_env(lambda_env(template, **{parameter: value}))
    for value in refused:
        assert not pattern.fullmatch(value), value


def test_the_success_webhook_parameter_is_readable_exactly_when_set(
    template: dict[str, Any], translated: dict[str, Any]
) -> None:
    name = "/backup-monitor/slack-success-webhook-url"
    unset = {s.get("Sid"): s for s in function_statements(translated)}
    assert "success" not in str(cfn.Evaluator(translated).value(unset["ReadOwnSecrets"]["Resource"]))
    evaluator = cfn.Evaluator(translated, SlackSuccessWebhookUrlParameter=name)
    granted = {s.get("Sid"): s for s in function_statements(translated, SlackSuccessWebhookUrlParameter=name)}
    assert evaluator.value(granted["ReadOwnSecrets"]["Resource"])[-1] == SSM_ARN + name
    assert resolved_settings(template, SlackSuccessWebhookUrlParameter=name).slack_success_webhook_url_parameter == (
        name
    )


@pytest.mark.parametrize(
    ("parameters", "refusal"),
    [
        ({"SlackSuccessChannel": "C0SUCCESS1"}, "needs SlackDelivery=bot"),
        (
            {
                "SlackDelivery": "bot",
                "SlackChannel": "C1",
                "SlackSuccessChannel": "C2",
                "SlackSuccessWebhookUrlParameter": "/bm/success",
            },
            "not both",
        ),
    ],
)
def test_the_rules_refuse_success_settings_the_code_refuses(
    template: dict[str, Any], parameters: dict[str, str], refusal: str
) -> None:
    from backup_monitor.config import ConfigError

    failures = cfn.Evaluator(template, **parameters, **DEPLOYABLE).rule_failures()
    assert len(failures) == 1
    assert refusal in failures[0]
    with pytest.raises(ConfigError):
        resolved_settings(template, **parameters)


# -- reserved concurrency -----------------------------------------------------------------------------------


def function_properties(template: dict[str, Any], **parameters: str) -> dict[str, Any]:
    properties: dict[str, Any] = cfn.Evaluator(template, **parameters).value(
        template["Resources"]["BackupMonitorFunction"]["Properties"]
    )
    return properties


def test_reserved_concurrency_is_off_unless_asked(template: dict[str, Any]) -> None:
    assert template["Parameters"]["ReservedConcurrency"]["Default"] == 0
    assert "ReservedConcurrentExecutions" not in function_properties(template)
    assert function_properties(template, ReservedConcurrency="1")["ReservedConcurrentExecutions"] == "1"


def test_reserved_concurrency_is_refused_with_token_shards(template: dict[str, Any]) -> None:
    shards = {"ScalingoApiTokenParameters": SHARDS, **DEPLOYABLE}
    assert cfn.Evaluator(template, **shards).rule_failures() == []
    assert "ReservedConcurrentExecutions" not in function_properties(template, **shards)
    failures = cfn.Evaluator(template, ReservedConcurrency="3", **shards).rule_failures()
    assert len(failures) == 1
    assert "ReservedConcurrency must stay 0 with ScalingoApiTokenParameters" in failures[0]
    # and even past the rule, the function would not be reserved
    assert "ReservedConcurrentExecutions" not in function_properties(template, ReservedConcurrency="3", **shards)


# -- alarms reach a person -------------------------------------------------------------------------------------


def test_alarm_email_is_required_or_explicitly_none(template: dict[str, Any]) -> None:
    (failure,) = cfn.Evaluator(template).rule_failures()
    assert failure.startswith("AlarmEmail is required")
    assert "Type none" in failure
    subscription = template["Resources"]["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert cfn.Evaluator(template, AlarmEmail="oncall@example.com").condition("HasAlarmEmail")
    nobody = cfn.Evaluator(template, AlarmEmail="none")
    assert nobody.rule_failures() == []
    assert not nobody.condition("HasAlarmEmail")


def test_alarms_go_to_slack_through_chatbot_when_both_ids_are_given(template: dict[str, Any]) -> None:
    ids = {"AlarmSlackWorkspaceId": "T0123ABCD", "AlarmSlackChannelId": "C0123456789"}
    both = cfn.Evaluator(template, AlarmEmail="none", **ids)
    assert both.rule_failures() == []
    assert both.condition("HasChatbot")
    assert not cfn.Evaluator(template, **DEPLOYABLE).condition("HasChatbot")
    for one in ({"AlarmSlackWorkspaceId": "T0123ABCD"}, {"AlarmSlackChannelId": "C0123456789"}):
        (failure,) = cfn.Evaluator(template, **one, **DEPLOYABLE).rule_failures()
        assert "AWS Chatbot needs both" in failure
        assert not cfn.Evaluator(template, **one, **DEPLOYABLE).condition("HasChatbot")

    channel = template["Resources"]["AlarmChatbotChannel"]
    role = template["Resources"]["AlarmChatbotRole"]
    assert channel["Type"] == "AWS::Chatbot::SlackChannelConfiguration"
    assert channel["Condition"] == role["Condition"] == "HasChatbot"
    props = both.value(channel["Properties"])
    assert (props["SlackWorkspaceId"], props["SlackChannelId"]) == ("T0123ABCD", "C0123456789")
    assert channel["Properties"]["SnsTopicArns"] == [{"Ref": "AlarmTopic"}]
    assert props["IamRoleArn"] == "<AlarmChatbotRole.Arn>"
    assert props["UserRoleRequired"] is False
    # Without guardrails Chatbot applies AdministratorAccess to the channel: read-only CloudWatch instead.
    assert props["GuardrailPolicies"] == ["arn:aws:iam::aws:policy/CloudWatchReadOnlyAccess"]
    # Its own role, trusted by Chatbot only, reading CloudWatch only (the alarm's graph).
    role_props = role["Properties"]
    (trust,) = role_props["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "chatbot.amazonaws.com"}
    assert "ManagedPolicyArns" not in role_props
    statements = [s for policy in role_props["Policies"] for s in policy["PolicyDocument"]["Statement"]]
    actions = [action for s in statements for action in as_list(s["Action"])]
    assert actions
    assert all(re.fullmatch(r"cloudwatch:(Describe|Get|List)\*", a) for a in actions), actions


# -- the function's own role ------------------------------------------------------------------------------------


def test_the_role_grants_exactly_its_log_group_and_the_two_xray_calls(translated: dict[str, Any]) -> None:
    role = translated["Resources"]["BackupMonitorFunctionRole"]
    assert role["Type"] == "AWS::IAM::Role"
    assert "ManagedPolicyArns" not in role["Properties"]  # no AWSLambdaBasicExecutionRole, no AWSXrayWriteOnlyAccess
    assert "AWSLambdaBasicExecutionRole" not in str(translated)
    assert "AWSXray" not in str(translated)
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert (trust["Principal"], trust["Action"]) == ({"Service": "lambda.amazonaws.com"}, "sts:AssumeRole")
    statements = {s["Sid"]: s for s in function_statements(translated)}
    logs = statements["WriteOwnLogs"]
    assert set(logs["Action"]) == {"logs:CreateLogStream", "logs:PutLogEvents"}
    # (a log group's Ref is its name; the rehearsal compares the ARN with the deployed group's)
    assert cfn.Evaluator(translated).value(logs["Resource"]) == (
        "arn:aws:logs:eu-west-3:123456789012:log-group:<MonitorLogGroup>:*"
    )
    assert not any("logs:CreateLogGroup" in str(s["Action"]) for s in statements.values())
    traces = statements["SendTraces"]
    assert set(traces["Action"]) == {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
    assert [s for s in statements.values() if "xray:" in str(s["Action"])] == [traces]
    function = translated["Resources"]["BackupMonitorFunction"]["Properties"]
    assert function["TracingConfig"] == {"Mode": "Active"}
    assert function["LoggingConfig"] == {"LogGroup": {"Ref": "MonitorLogGroup"}}
    # the function's roles: this one; SAM generates only the schedule's (invoking the function)
    # (and the interactivity function's own, with SlackInteractivity enabled: test_the_interactivity_role_...)
    roles = {
        n
        for n, r in resources_of(translated, "AWS::IAM::Role").items()
        if r.get("Condition") not in ("HasChatbot", "Interactive")
    }
    assert set(roles) == {"BackupMonitorFunctionRole", "BackupMonitorFunctionScheduleRole"}
    assert set(statements) == {
        "WriteOwnLogs",
        "SendTraces",
        "SendFailuresToOwnQueue",
        "StateItems",
        "ReadOwnSecrets",
        "DecryptSecretsThroughSsm",
    }


# -- the secrets command names what the template names ----------------------------------------------------------


def test_the_secrets_command_knows_the_templates_defaults(template: dict[str, Any]) -> None:
    from backup_monitor.deploy_secrets import DEFAULTS

    for name, default in DEFAULTS.items():
        assert str(template["Parameters"][name].get("Default", "")) == default, name


# -- the artifact holds the monitor, not its tests ----------------------------------------------------------------

NOT_SHIPPED = ("backup_monitor.fakes", "backup_monitor.demo", "tests", "bench")


def test_the_built_function_has_no_test_or_demo_code() -> None:
    function = built("BackupMonitorFunction")
    for path in function.rglob("*"):
        relative = path.relative_to(function).as_posix()
        assert not relative.startswith(("backup_monitor/fakes", "backup_monitor/demo.", "tests", "bench")), relative
        assert not re.search(r"(^|/)(test_[^/]*|conftest)\.py$", relative), relative
    # The shipped code names them only lazily (cli.py's demo command imports backup_monitor.demo when run).
    lazy = []
    for source in function.rglob("*.py"):
        tree = ast.parse(source.read_text())
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                if name.startswith(NOT_SHIPPED):
                    assert id(node) not in top_level, f"{source}: imports {name} at load"
                    lazy.append((source.relative_to(function).as_posix(), name))
    assert lazy == [("backup_monitor/cli.py", "backup_monitor.demo")]


def test_the_built_handler_and_cli_import_without_the_test_code(tmp_path: Path) -> None:
    import subprocess
    import sys

    function = built("BackupMonitorFunction")
    probe = (
        "import importlib.util, sys\n"
        f"sys.path.insert(0, {str(function)!r})\n"
        "import app, backup_monitor, backup_monitor.cli\n"
        f"assert backup_monitor.__file__.startswith({str(function)!r}), backup_monitor.__file__\n"
        f"loaded = sorted(m for m in sys.modules if m.startswith({NOT_SHIPPED!r}))\n"
        "assert not loaded, loaded\n"
        "assert importlib.util.find_spec('backup_monitor.fakes') is None\n"
        "assert importlib.util.find_spec('backup_monitor.demo') is None\n"
        "try:\n    backup_monitor.cli.main(['secrets', 'check', '--help'])\n"
        "except SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"AWS_DEFAULT_REGION": "eu-west-3", "POWERTOOLS_METRICS_NAMESPACE": "BackupMonitor"}
    # -B: nothing written into the build; the working directory holds no tests package to find
    result = subprocess.run(
        [sys.executable, "-B", "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]


# -- the Slack interactivity function (issue 20) ------------------------------------------------------------------

INTERACTIONS = ("InteractionsFunction", "InteractionsFunctionRole", "InteractionsLogGroup")


def test_the_interactivity_function_exists_only_when_enabled_and_switches_the_buttons_on(
    template: dict[str, Any],
) -> None:
    assert template["Parameters"]["SlackInteractivity"]["Default"] == "disabled"
    for name in INTERACTIONS:
        assert template["Resources"][name]["Condition"] == "Interactive"
    assert template["Outputs"]["InteractionsUrl"]["Condition"] == "Interactive"
    off, on = cfn.Evaluator(template), cfn.Evaluator(template, SlackInteractivity="enabled")
    assert not off.condition("Interactive")
    assert on.condition("Interactive")
    assert lambda_env(template)["SLACK_INTERACTIVE"] == "false"
    assert lambda_env(template, SlackInteractivity="enabled")["SLACK_INTERACTIVE"] == "true"
    assert Settings.from_env(lambda_env(template, SlackInteractivity="enabled")).slack_interactive
    function = template["Resources"]["InteractionsFunction"]["Properties"]
    assert function["FunctionUrlConfig"] == {"AuthType": "NONE"}
    assert function["Handler"] == "interactions_app.lambda_handler"
    assert (function["Timeout"], function["MemorySize"]) == (10, 256)
    assert function["Role"] == {"Fn::GetAtt": ["InteractionsFunctionRole", "Arn"]}
    skips = template["Resources"]["InteractionsFunction"]["Metadata"]["checkov"]["skip"]
    assert any("signs every request" in s["comment"] for s in skips)


def test_with_token_shards_both_roles_read_each_shards_token_exactly(translated: dict[str, Any]) -> None:
    """A download click reads the token of the database's shard: the endpoint is granted the same exact ARNs as
    the checks, through one policy on both roles, and only with interactivity enabled."""
    evaluator = cfn.Evaluator(translated, ScalingoApiTokenParameters=SHARDS, SlackInteractivity="enabled")
    expected = {SSM_ARN + name for name in SHARDS.split(",")}
    for role in ("BackupMonitorFunctionRole", "InteractionsFunctionRole"):
        statements = function_statements(
            translated, role, ScalingoApiTokenParameters=SHARDS, SlackInteractivity="enabled"
        )
        (shards,) = [s for s in statements if s.get("Sid") == "ReadShardTokens"]
        assert set(evaluator.value(shards["Resource"])) == expected
    policy = translated["Resources"]["ShardTokensPolicy"]["Properties"]
    assert evaluator.value(policy["Roles"]) == ["<BackupMonitorFunctionRole>", "<InteractionsFunctionRole>"]
    alone = cfn.Evaluator(translated, ScalingoApiTokenParameters=SHARDS)
    assert alone.value(policy["Roles"]) == ["<BackupMonitorFunctionRole>"]


def test_the_interactivity_role_reads_only_its_secrets_and_the_items_its_store_calls_make(
    template: dict[str, Any], translated: dict[str, Any]
) -> None:
    statements = {s["Sid"]: s for s in function_statements(translated, "InteractionsFunctionRole")}
    assert set(statements) == {"WriteOwnLogs", "StateItems", "ReadOwnSecrets", "DecryptSecretsThroughSsm"}
    assert set(statements["StateItems"]["Action"]) == {"dynamodb:BatchGetItem", "dynamodb:PutItem"}
    assert set(statements["StateItems"]["Action"]) <= dynamodb_calls_in_code()
    assert statements["StateItems"]["Resource"] == {"Fn::GetAtt": ["StateTable", "Arn"]}
    assert "InteractionsLogGroup" in str(statements["WriteOwnLogs"]["Resource"])
    arn = "arn:aws:ssm:eu-west-3:123456789012:parameter/backup-monitor/"
    read = statements["ReadOwnSecrets"]["Resource"]
    webhook = cfn.Evaluator(template, SlackInteractivity="enabled")
    bot = cfn.Evaluator(template, SlackInteractivity="enabled", SlackDelivery="bot", SlackChannel="C1")
    assert [r for r in webhook.value(read) if r] == [arn + "slack-signing-secret", arn + "scalingo-api-token"]
    assert [r for r in bot.value(read) if r] == [
        arn + "slack-signing-secret",
        arn + "scalingo-api-token",
        arn + "slack-bot-token",
    ]
    for statement in statements.values():
        assert "*" not in str(statement["Action"])
        assert statement["Resource"] != "*"
    decrypt = statements["DecryptSecretsThroughSsm"]
    assert webhook.value(decrypt["Condition"]) == {"StringEquals": {"kms:ViaService": "ssm.eu-west-3.amazonaws.com"}}


@pytest.mark.parametrize("links", ["true", "false"])
def test_the_endpoint_reads_the_settings_that_decide_a_click_as_the_checks_do(
    template: dict[str, Any], links: str
) -> None:
    """DOWNLOAD_LINKS off in the stack must refuse an old "Get download link" button (the endpoint's own check),
    and the endpoint finds a clicked database among the same databases as the checks."""
    given = {"SlackInteractivity": "enabled", "DownloadLinks": links, "ExcludeApps": "staging-*"}
    monitor = Settings.from_env(lambda_env(template, **given))
    endpoint = Settings.from_env(lambda_env(template, "InteractionsFunction", **given))
    assert monitor.download_links is (links == "true")
    assert endpoint.download_links is monitor.download_links
    assert endpoint.excluded("staging-x")
    assert not endpoint.excluded("prod-x")
    assert (endpoint.monitored, endpoint.regions) == (monitor.monitored, monitor.regions)
