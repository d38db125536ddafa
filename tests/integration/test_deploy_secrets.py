"""`backup-monitor secrets put` and `secrets check`, the real command in a subprocess against moto's SSM server
(loopback): the region and the names as `sam deploy` takes them (samconfig.toml), the values from standard
input only, and never one of them in the output."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest

from tests.support import cfn
from tests.support.moto import moto_server
from tests.support.processes import clean_env

if TYPE_CHECKING:
    from mypy_boto3_ssm.client import SSMClient

STACK_REGION = "eu-west-3"
OTHER_REGION = "eu-central-1"
WEBHOOK = "https://hooks.slack.com/services/T0000/B0000/s3cr3tw3bh00kv4lu3"
BOT_TOKEN = "xoxb-1111-2222-s3cr3tb0tt0k3n"
SCALINGO_TOKEN = "tk-us-s3cr3tsc4l1ngot0k3n"
SECRETS = (WEBHOOK, BOT_TOKEN, SCALINGO_TOKEN)


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


def ssm(url: str, region: str) -> SSMClient:
    client: SSMClient = boto3.client(
        "ssm", endpoint_url=url, region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    return client


def run(
    url: str, cwd: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = clean_env() | {
        "PYTHONPATH": str(cfn.ROOT / "functions/backup_monitor"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL_SSM": url,
        "AWS_CONFIG_FILE": str(cwd / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(cwd / "no-aws-credentials"),
        **(env or {}),
    }
    result = subprocess.run(
        [sys.executable, "-m", "backup_monitor.cli", "secrets", *args],
        input=stdin,
        env=full_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    for secret in SECRETS:
        assert secret not in result.stdout + result.stderr
    return result


def samconfig(directory: Path, region: str | None, overrides: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    lines = ["version = 0.1", "[default.deploy.parameters]", 'capabilities = "CAPABILITY_IAM"']
    if region:
        lines.append(f'region = "{region}"')
    assert "'" not in overrides
    lines.append(f"parameter_overrides = '{overrides}'")  # a TOML literal string, as sam deploy --guided writes
    (directory / "samconfig.toml").write_text("\n".join(lines) + "\n")
    return directory


def value(url: str, region: str, name: str) -> tuple[str, str]:
    parameter = ssm(url, region).get_parameter(Name=name, WithDecryption=True)["Parameter"]
    return parameter["Type"], parameter["Value"]


def test_webhook_path_put_in_the_stacks_region_and_checked_there_only(moto_url: str, tmp_path: Path) -> None:
    prefix = "/bm-webhook"
    overrides = (
        f'SlackDelivery="webhook" ScalingoApiTokenParameter="{prefix}/scalingo-api-token" '
        f'SlackWebhookUrlParameter="{prefix}/slack-webhook-url" AlarmEmail="oncall@example.com"'
    )
    project = samconfig(tmp_path / "project", STACK_REGION, overrides)

    before = run(moto_url, project, "check")
    assert before.returncode == 1
    assert f"{prefix}/scalingo-api-token (Scalingo API token) is missing" in before.stderr
    assert f"{prefix}/slack-webhook-url (Slack webhook URL) is missing" in before.stderr
    assert f"store them with: backup-monitor secrets put --region {STACK_REGION}" in before.stderr

    # the region comes from samconfig.toml, not the environment's
    put = run(moto_url, project, "put", stdin=f"{SCALINGO_TOKEN}\n{WEBHOOK}\n", env={"AWS_REGION": OTHER_REGION})
    assert put.returncode == 0, put.stderr
    assert f"in {STACK_REGION} (from samconfig.toml [default.deploy.parameters] region)" in put.stderr
    assert value(moto_url, STACK_REGION, f"{prefix}/scalingo-api-token") == ("SecureString", SCALINGO_TOKEN)
    assert value(moto_url, STACK_REGION, f"{prefix}/slack-webhook-url") == ("SecureString", WEBHOOK)

    after = run(moto_url, project, "check")
    assert after.returncode == 0, after.stderr
    assert f"are in {STACK_REGION}" in after.stderr

    # the same names, checked in another region: nothing there
    elsewhere = run(moto_url, project, "check", "--region", OTHER_REGION)
    assert elsewhere.returncode == 1
    assert f"in {OTHER_REGION} (from --region)" in elsewhere.stderr
    assert f"{prefix}/slack-webhook-url (Slack webhook URL) is missing" in elsewhere.stderr
    assert f"backup-monitor secrets put --region {OTHER_REGION}" in elsewhere.stderr


def test_bot_path_with_shards_and_a_key_from_the_overrides(moto_url: str, tmp_path: Path) -> None:
    # no samconfig: the region from AWS_REGION, the names from --parameter-overrides over the template's defaults
    key = "arn:aws:kms:eu-west-3:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    overrides = (
        "SlackDelivery=bot SlackChannel=C0123456789 ScalingoApiTokenParameters=/bm-bot/acme,/bm-bot/globex "
        f"SecretsKmsKeyArn={key} AlarmEmail=none"
    )
    env = {"AWS_REGION": STACK_REGION}
    put = run(
        moto_url,
        tmp_path,
        "put",
        "--parameter-overrides",
        overrides,
        stdin=f"{SCALINGO_TOKEN}-a\n{SCALINGO_TOKEN}-g\n{BOT_TOKEN}\n",
        env=env,
    )
    assert put.returncode == 0, put.stderr
    assert "(from AWS_REGION)" in put.stderr
    assert value(moto_url, STACK_REGION, "/bm-bot/acme") == ("SecureString", f"{SCALINGO_TOKEN}-a")
    assert value(moto_url, STACK_REGION, "/bm-bot/globex") == ("SecureString", f"{SCALINGO_TOKEN}-g")
    assert value(moto_url, STACK_REGION, "/backup-monitor/slack-bot-token") == ("SecureString", BOT_TOKEN)
    described = ssm(moto_url, STACK_REGION).describe_parameters(
        ParameterFilters=[{"Key": "Name", "Values": ["/backup-monitor/slack-bot-token"]}]
    )["Parameters"]
    assert described[0].get("KeyId") == key
    assert run(moto_url, tmp_path, "check", "--parameter-overrides", overrides, env=env).returncode == 0
    # the webhook, not stored, is not what this deployment reads
    webhook_check = run(moto_url, tmp_path, "check", env=env)
    assert webhook_check.returncode == 1
    assert "/backup-monitor/slack-webhook-url (Slack webhook URL) is missing" in webhook_check.stderr

    # one parameter rotated alone
    rotated = run(
        moto_url,
        tmp_path,
        "put",
        "--parameter-overrides",
        overrides,
        "--only",
        "/backup-monitor/slack-bot-token",
        stdin=f"{BOT_TOKEN}-2\n",
        env=env,
    )
    assert rotated.returncode == 0, rotated.stderr
    assert value(moto_url, STACK_REGION, "/backup-monitor/slack-bot-token")[1] == f"{BOT_TOKEN}-2"
    assert value(moto_url, STACK_REGION, "/bm-bot/acme")[1] == f"{SCALINGO_TOKEN}-a"


@pytest.mark.parametrize(
    ("delivery", "stdin", "refusal"),
    [
        ("webhook", f"{SCALINGO_TOKEN}\n{WEBHOOK.replace('https', 'http')}\n", "must be"),
        ("webhook", f"{SCALINGO_TOKEN}\nhooks.slack.com/services/x\n", "must be an http(s) URL"),
        ("bot", f"{SCALINGO_TOKEN}\nxoxp-{BOT_TOKEN}\n", "starts with xoxb-"),
        ("bot", f"\n{BOT_TOKEN}\n", "Scalingo API token (/bm-bad/token): empty value"),
        ("bot", f"{SCALINGO_TOKEN} {SCALINGO_TOKEN}\n{BOT_TOKEN}\n", "contains spaces"),
        ("bot", f"{SCALINGO_TOKEN}\n", "standard input ended before the Slack bot token"),
    ],
)
def test_a_wrong_value_is_refused_before_anything_is_stored_and_never_shown(
    moto_url: str, tmp_path: Path, delivery: str, stdin: str, refusal: str
) -> None:
    overrides = f"SlackDelivery={delivery} ScalingoApiTokenParameter=/bm-bad/token"
    result = run(moto_url, tmp_path, "put", "--region", STACK_REGION, "--parameter-overrides", overrides, stdin=stdin)
    assert result.returncode == 2
    assert refusal in result.stderr
    assert "/bm-bad/token" not in {p["Name"] for p in ssm(moto_url, STACK_REGION).describe_parameters()["Parameters"]}


def test_the_check_says_alarm_email_is_missing_before_the_build(moto_url: str, tmp_path: Path) -> None:
    client = ssm(moto_url, STACK_REGION)
    for name in ("/bm-mail/token", "/bm-mail/webhook"):
        client.put_parameter(Name=name, Value=SCALINGO_TOKEN, Type="SecureString", Overwrite=True)
    overrides = "ScalingoApiTokenParameter=/bm-mail/token SlackWebhookUrlParameter=/bm-mail/webhook"
    project = samconfig(tmp_path, STACK_REGION, overrides)
    result = run(moto_url, project, "check")
    assert result.returncode == 1
    assert "AlarmEmail is not set" in result.stderr
    # --parameter-overrides replaces samconfig's, as for sam deploy
    assert run(moto_url, project, "check", "--parameter-overrides", "AlarmEmail=none").returncode == 1
    assert run(moto_url, project, "check", "--parameter-overrides", overrides + " AlarmEmail=none").returncode == 0


def test_without_a_region_the_command_says_where_to_give_one(moto_url: str, tmp_path: Path) -> None:
    result = run(moto_url, tmp_path, "check")
    assert result.returncode == 2
    assert "no region: give --region (the stack's region)" in result.stderr


def test_a_parameter_stored_in_clear_is_not_accepted(moto_url: str, tmp_path: Path) -> None:
    client = ssm(moto_url, OTHER_REGION)
    client.put_parameter(Name="/bm-clear/token", Value=SCALINGO_TOKEN, Type="String")
    client.put_parameter(Name="/bm-clear/webhook", Value=WEBHOOK, Type="SecureString")
    overrides = "ScalingoApiTokenParameter=/bm-clear/token SlackWebhookUrlParameter=/bm-clear/webhook"
    result = run(moto_url, tmp_path, "check", "--region", OTHER_REGION, "--parameter-overrides", overrides)
    assert result.returncode == 1
    assert "/bm-clear/token (Scalingo API token) is a String, not a SecureString" in result.stderr
    assert "/bm-clear/webhook (" not in result.stderr  # the SecureString one is fine


def test_on_a_terminal_each_value_is_asked_for_without_echo(moto_url: str, tmp_path: Path) -> None:
    import os
    import pty
    import select
    import time

    master, slave = pty.openpty()
    env = clean_env() | {
        "PYTHONPATH": str(cfn.ROOT / "functions/backup_monitor"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL_SSM": moto_url,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
    }
    overrides = "ScalingoApiTokenParameter=/bm-tty/token SlackWebhookUrlParameter=/bm-tty/webhook"
    # a new session without a controlling terminal: getpass reads the terminal on standard input, echo off
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "backup_monitor.cli",
            "secrets",
            "put",
            *("--region", STACK_REGION, "--parameter-overrides", overrides),
        ],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=tmp_path,
        start_new_session=True,
    )
    os.close(slave)
    seen = b""

    def read_until(text: bytes) -> None:
        nonlocal seen
        deadline = time.monotonic() + 30
        while text not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    return

    try:
        read_until(b"Scalingo API token for /bm-tty/token (hidden): ")
        os.write(master, SCALINGO_TOKEN.encode() + b"\n")
        read_until(b"Slack webhook URL for /bm-tty/webhook (hidden): ")
        os.write(master, WEBHOOK.encode() + b"\n")
        assert process.wait(timeout=60) == 0, seen.decode(errors="replace")
        read_until(b"stored /bm-tty/webhook")
    finally:
        process.kill()
        os.close(master)
    assert b"stored /bm-tty/webhook" in seen
    for secret in (SCALINGO_TOKEN, WEBHOOK):
        assert secret.encode() not in seen  # not echoed by the terminal, not printed
    assert value(moto_url, STACK_REGION, "/bm-tty/token") == ("SecureString", SCALINGO_TOKEN)
    assert value(moto_url, STACK_REGION, "/bm-tty/webhook") == ("SecureString", WEBHOOK)


def test_the_projects_samconfig_is_read_as_sam_deploy_reads_it() -> None:
    from backup_monitor.deploy_secrets import read_samconfig

    region, overrides = read_samconfig(cfn.ROOT / "samconfig.toml", "default")
    assert region == "eu-west-3"
    assert overrides["SlackDelivery"] == "webhook"
    assert set(overrides) <= set(cfn.load()["Parameters"])


def documented_commands() -> list[str]:
    """The commands of docs/deploying.md's "1. Store the secrets", as a user copies them (comments dropped)."""
    page = (cfn.ROOT / "docs" / "deploying.md").read_text()
    section = page.split("## 1. Store the secrets", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.startswith("backup-monitor ")]


@pytest.mark.parametrize("delivery", ["webhook", "bot"])
def test_the_documented_commands_store_what_the_deployed_stack_reads(
    moto_url: str, tmp_path: Path, delivery: str
) -> None:
    """The guide's commands as written, run in a copy of the project's samconfig.toml edited as the guide says
    (AlarmEmail, and the bot's SlackDelivery and SlackChannel), with the shell's region elsewhere; then the
    template deployed on moto's CloudFormation with samconfig's overrides, in samconfig's region: the function
    is granted, and names, exactly the parameters stored, in its own region."""
    from backup_monitor.deploy_secrets import read_samconfig
    from tests.integration.test_deploy_rehearsal import deploy, role_statements

    commands = documented_commands()
    assert [c.split()[:3] for c in commands] == [
        ["backup-monitor", "secrets", "put"],
        ["backup-monitor", "secrets", "check"],
    ]
    project = tmp_path / "project"
    project.mkdir()
    config = (cfn.ROOT / "samconfig.toml").read_text()
    extra = ' AlarmEmail=\\"oncall@example.com\\"'
    if delivery == "bot":
        config = config.replace('SlackDelivery=\\"webhook\\"', 'SlackDelivery=\\"bot\\" SlackChannel=\\"C0123456789\\"')
    config = config.replace("SlackDelivery=", "SlackDelivery=", 1).replace('\\""\n', f'\\"{extra}"\n', 1)
    (project / "samconfig.toml").write_text(config)
    region, overrides = read_samconfig(project / "samconfig.toml", "default")
    assert region is not None
    assert (region, overrides["SlackDelivery"], overrides["AlarmEmail"]) == (
        STACK_REGION,
        delivery,
        "oncall@example.com",
    )
    slack_secret = WEBHOOK if delivery == "webhook" else BOT_TOKEN
    elsewhere = {"AWS_REGION": OTHER_REGION, "AWS_DEFAULT_REGION": OTHER_REGION}
    put, check = commands
    stored = run(moto_url, project, *put.split()[2:], stdin=f"{SCALINGO_TOKEN}\n{slack_secret}\n", env=elsewhere)
    assert stored.returncode == 0, stored.stderr
    checked = run(moto_url, project, *check.split()[2:], env=elsewhere)
    assert checked.returncode == 0, checked.stderr

    s3 = boto3.client("s3", endpoint_url=moto_url, region_name=region, aws_access_key_id="t", aws_secret_access_key="t")
    if "bucket" not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:  # one moto server for the module
        s3.create_bucket(Bucket="bucket", CreateBucketConfiguration={"LocationConstraint": region})
    for key in ("CodeUri", "ContentUri"):
        s3.put_object(Bucket="bucket", Key=key, Body=b"PK\x05\x06" + bytes(18))  # an empty zip
    body = json.dumps(cfn.translate(cfn.load()))
    with pytest.MonkeyPatch.context() as patch:
        for name, value_ in {
            "AWS_ACCESS_KEY_ID": "t",
            "AWS_SECRET_ACCESS_KEY": "t",
            "AWS_DEFAULT_REGION": region,
        }.items():
            patch.setenv(name, value_)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # moto's "cannot parse AWS::CloudWatch::Alarm" (test_deploy_rehearsal)
            resources = deploy(moto_url, body, f"bm-guide-{delivery}", **overrides)
        function = boto3.client("lambda", endpoint_url=moto_url).get_function(
            FunctionName=f"bm-guide-{delivery}-monitor"
        )
        variables = function["Configuration"]["Environment"]["Variables"]
        role = resources["BackupMonitorFunctionRole"]["PhysicalResourceId"]
        granted = role_statements(boto3.client("iam", endpoint_url=moto_url), role)["ReadOwnSecrets"]["Resource"]
    names = [variables["SCALINGO_API_TOKEN_PARAMETER"]]
    names.append(variables["SLACK_WEBHOOK_URL_PARAMETER" if delivery == "webhook" else "SLACK_BOT_TOKEN_PARAMETER"])
    arns = sorted(r for r in (granted if isinstance(granted, list) else [granted]) if r)
    assert arns == sorted(f"arn:aws:ssm:{region}:123456789012:parameter{name}" for name in names)
    assert [value(moto_url, region, name)[1] for name in names] == [SCALINGO_TOKEN, slack_secret]


def test_with_interactivity_the_signing_secret_is_stored_too(moto_url: str, tmp_path: Path) -> None:
    overrides = "SlackInteractivity=enabled SlackSigningSecretParameter=/bm-buttons/signing AlarmEmail=none"
    env = {"AWS_REGION": STACK_REGION}
    signing = "8f742231b10e8888abcd99yyyzzz85a5"  # not hexadecimal: refused, nothing stored
    refused = run(
        moto_url,
        tmp_path,
        "put",
        "--parameter-overrides",
        overrides,
        stdin=f"{SCALINGO_TOKEN}\n{WEBHOOK}\n{signing}\n",
        env=env,
    )
    assert refused.returncode == 2
    assert "Slack signing secret (/bm-buttons/signing): a Slack signing secret is hexadecimal" in refused.stderr
    assert signing not in refused.stderr
    assert run(moto_url, tmp_path, "check", "--parameter-overrides", overrides, env=env).returncode == 1
    signing = "8f742231b10e8888abcd99aaabbb85a5"
    stored = run(
        moto_url,
        tmp_path,
        "put",
        "--parameter-overrides",
        overrides,
        stdin=f"{SCALINGO_TOKEN}\n{WEBHOOK}\n{signing}\n",
        env=env,
    )
    assert stored.returncode == 0, stored.stderr
    assert value(moto_url, STACK_REGION, "/bm-buttons/signing") == ("SecureString", signing)
    assert run(moto_url, tmp_path, "check", "--parameter-overrides", overrides, env=env).returncode == 0
