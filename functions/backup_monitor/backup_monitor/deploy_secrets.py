"""`backup-monitor secrets put` and `backup-monitor secrets check`: the SSM SecureString parameters a deployment
reads, stored in (or checked in) the stack's region.

The parameter names and the region come from the same place `sam deploy` takes them: samconfig.toml's
`[<env>.deploy.parameters]` (`region`, `parameter_overrides`), over the template's defaults (DEFAULTS, which a
test compares with template.yaml); `--region` wins, and `--parameter-overrides` replaces samconfig's as it does
for `sam deploy`. Values are read from standard
input (a hidden prompt on a terminal, one line each otherwise): never from the command line, where they would
stay in the shell's history and the process list (and AWS CLI v1 fetches a URL given as a parameter value).
No value is ever printed, not even in an error.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import shlex
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

from backup_monitor.config import ConfigError, check_secret_url
from backup_monitor.helptext import exit_statuses, wrapped

if TYPE_CHECKING:
    from mypy_boto3_ssm.client import SSMClient

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
SECRETS_EXIT_STATUSES = (
    (EXIT_OK, "stored (put), or every parameter present (check)"),
    (EXIT_FAILED, "a parameter missing, not a SecureString or under another key, AlarmEmail unset, or an AWS error"),
    (EXIT_USAGE, "bad usage, or a value that cannot be right (nothing is stored then)"),
)
AWS_EXTRA_HINT = "pip install 'scalingo-backup-monitor[aws]'"

# template.yaml's defaults of the parameters that name the secrets (tests/integration/test_template.py checks).
DEFAULTS: dict[str, str] = {
    "SlackDelivery": "webhook",
    "ScalingoApiTokenParameter": "/backup-monitor/scalingo-api-token",
    "ScalingoApiTokenParameters": "",
    "SlackWebhookUrlParameter": "/backup-monitor/slack-webhook-url",
    "SlackBotTokenParameter": "/backup-monitor/slack-bot-token",
    "SlackSuccessWebhookUrlParameter": "",
    "SlackInteractivity": "disabled",
    "SlackSigningSecretParameter": "/backup-monitor/slack-signing-secret",
    "SecretsKmsKeyArn": "",
    "AlarmEmail": "",
}


class SecretsError(Exception):
    """A usage or configuration problem (exit 2); the message never holds a secret."""


@dataclass(frozen=True, slots=True)
class Secret:
    """One SecureString parameter the function reads, and what it must hold."""

    parameter: str
    label: str
    kind: str  # "scalingo", "webhook", "bot" or "signing"

    def validate(self, value: str) -> None:
        """SecretsError when the value cannot be what the function expects (the value is not shown)."""
        where = f"{self.label} ({self.parameter})"
        if not value:
            raise SecretsError(f"{where}: empty value")
        if any(c.isspace() for c in value) or not value.isprintable():
            raise SecretsError(f"{where}: contains spaces or control characters (value not shown: it is a secret)")
        if self.kind == "webhook":
            try:
                check_secret_url(self.parameter, value)
            except ConfigError as exc:
                raise SecretsError(f"{where}: {exc.problem}") from None
            if urlsplit(value).scheme != "https":
                raise SecretsError(
                    f"{where}: must be an https URL like https://hooks.slack.com/services/... "
                    "(value not shown: it is a secret)"
                )
        elif self.kind == "bot" and not value.startswith("xoxb-"):
            raise SecretsError(f"{where}: a Slack bot token starts with xoxb- (value not shown: it is a secret)")
        elif self.kind == "signing" and not re.fullmatch(r"[0-9a-f]{32,64}", value):
            raise SecretsError(
                f"{where}: a Slack signing secret is hexadecimal (Basic Information, App Credentials; value not "
                "shown: it is a secret)"
            )


@dataclass(frozen=True, slots=True)
class Deployment:
    """Where the secrets go and which they are, as the deploy will see them."""

    region: str
    region_from: str
    secrets: tuple[Secret, ...]
    kms_key: str | None
    alarm_email: str = ""


def parse_overrides(raw: object) -> dict[str, str]:
    """samconfig's `parameter_overrides` (a string `Key="value" Key2=value`, or a list of such) as a dict."""
    items: list[str] = []
    for part in raw if isinstance(raw, list) else [raw]:
        if not isinstance(part, str):
            raise SecretsError(f"parameter_overrides: expected text, got {type(part).__name__}")
        items += shlex.split(part)
    overrides: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SecretsError(f"parameter_overrides: {item!r} is not Key=Value")
        overrides[key] = value
    return overrides


def read_samconfig(path: Path, env: str) -> tuple[str | None, dict[str, str]]:
    """The region and the parameter overrides of `[env.deploy.parameters]` (the region also from
    `[env.global.parameters]`, as SAM merges it); (None, {}) without the file."""
    if not path.is_file():
        return None, {}
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SecretsError(f"{path}: not valid TOML ({exc})") from None
    section: Any = data.get(env, {})
    deploy: Any = section.get("deploy", {}).get("parameters", {}) if isinstance(section, dict) else {}
    glob: Any = section.get("global", {}).get("parameters", {}) if isinstance(section, dict) else {}
    region = deploy.get("region") or glob.get("region")
    overrides = parse_overrides(deploy["parameter_overrides"]) if "parameter_overrides" in deploy else {}
    return (str(region) if region else None), overrides


def resolve(
    *,
    region: str | None,
    config_file: Path,
    config_env: str,
    overrides: str | None,
    environ: Mapping[str, str],
) -> Deployment:
    """The deployment's region and secrets: --region, else samconfig's, else AWS_REGION / AWS_DEFAULT_REGION."""
    config_region, parameters = read_samconfig(config_file, config_env)
    # as `sam deploy`: --parameter-overrides replaces samconfig's parameter_overrides (it does not add to them)
    values = {**DEFAULTS, **(parse_overrides(overrides) if overrides is not None else parameters)}
    if region:
        region_from = "--region"
    elif config_region:
        region, region_from = config_region, f"{config_file} [{config_env}.deploy.parameters] region"
    else:
        name = next((n for n in ("AWS_REGION", "AWS_DEFAULT_REGION") if environ.get(n, "").strip()), None)
        if name is None:
            raise SecretsError(
                f"no region: give --region (the stack's region), or set region in {config_file} "
                f"[{config_env}.deploy.parameters], or AWS_REGION"
            )
        region, region_from = environ[name].strip(), name
    delivery = values["SlackDelivery"]
    if delivery not in ("webhook", "bot"):
        raise SecretsError(f"SlackDelivery must be webhook or bot, got {delivery!r}")
    shards = [name.strip() for name in values["ScalingoApiTokenParameters"].split(",") if name.strip()]
    secrets = (
        [Secret(name, f"Scalingo API token of shard {i + 1}", "scalingo") for i, name in enumerate(shards)]
        if shards
        else [Secret(values["ScalingoApiTokenParameter"], "Scalingo API token", "scalingo")]
    )
    if delivery == "bot":
        secrets.append(Secret(values["SlackBotTokenParameter"], "Slack bot token", "bot"))
    else:
        secrets.append(Secret(values["SlackWebhookUrlParameter"], "Slack webhook URL", "webhook"))
    success = values["SlackSuccessWebhookUrlParameter"].strip()
    if success:
        secrets.append(Secret(success, "Slack webhook URL for success notices", "webhook"))
    if values["SlackInteractivity"] == "enabled":  # the buttons' endpoint verifies Slack's requests with it
        secrets.append(Secret(values["SlackSigningSecretParameter"], "Slack signing secret", "signing"))
    for secret in secrets:
        if not secret.parameter.startswith("/"):
            raise SecretsError(f"{secret.label}: {secret.parameter!r} is not an SSM parameter name (/a/b)")
    kms_key = values["SecretsKmsKeyArn"].strip() or None
    return Deployment(region, region_from, tuple(secrets), kms_key, values["AlarmEmail"].strip())


def read_values(secrets: Sequence[Secret], stdin: IO[str], prompt: Callable[[str], str] = getpass.getpass) -> list[str]:
    """One value per secret: a hidden prompt on a terminal, else one line each from standard input."""
    if stdin.isatty():
        return [prompt(f"{secret.label} for {secret.parameter} (hidden): ").strip() for secret in secrets]
    values = []
    for secret in secrets:
        line = stdin.readline()
        if not line:
            order = ", ".join(s.label for s in secrets)
            raise SecretsError(
                f"standard input ended before the {secret.label}: give {len(secrets)} values, one a line, in "
                f"this order: {order}"
            )
        values.append(line.strip())
    return values


def _ssm(region: str) -> SSMClient:
    try:
        import boto3
    except ImportError:
        raise SecretsError(f"this command needs boto3: {AWS_EXTRA_HINT}") from None
    client: SSMClient = boto3.client("ssm", region_name=region)
    return client


def _failure(exc: Exception, values: Sequence[str] = ()) -> str:
    from backup_monitor.secrets import describe

    text = describe(exc)
    for value in values:
        if value:
            text = text.replace(value, "(value not shown)")
    return text


def fix_command(args: argparse.Namespace, region: str) -> str:
    """The `secrets put` command that stores what `check` found missing, with the same choices."""
    words = ["backup-monitor", "secrets", "put", "--region", region]
    if args.config_env != "default":
        words += ["--config-env", args.config_env]
    if args.config_file != "samconfig.toml":
        words += ["--config-file", args.config_file]
    if args.parameter_overrides:
        words += ["--parameter-overrides", args.parameter_overrides]
    return shlex.join(words)


def put(args: argparse.Namespace, deployment: Deployment, stdin: IO[str]) -> int:
    secrets = deployment.secrets
    if args.only:
        known = {s.parameter for s in secrets}
        unknown = [name for name in args.only if name not in known]
        if unknown:
            listed = ", ".join(sorted(known))
            raise SecretsError(f"--only {unknown[0]}: not a parameter this deployment reads ({listed})")
        secrets = tuple(s for s in secrets if s.parameter in args.only)
    print(
        f"backup-monitor: storing {len(secrets)} SecureString parameter(s) in {deployment.region} "
        f"(from {deployment.region_from}): " + ", ".join(s.parameter for s in secrets),
        file=sys.stderr,
    )
    values = read_values(secrets, stdin)
    for secret, value in zip(secrets, values, strict=True):
        secret.validate(value)
    ssm = _ssm(deployment.region)
    for secret, value in zip(secrets, values, strict=True):
        try:
            if deployment.kms_key:
                ssm.put_parameter(
                    Name=secret.parameter, Value=value, Type="SecureString", Overwrite=True, KeyId=deployment.kms_key
                )
            else:
                ssm.put_parameter(Name=secret.parameter, Value=value, Type="SecureString", Overwrite=True)
        except Exception as exc:  # botocore's ClientError and BotoCoreError, without importing botocore here
            if not _is_aws_error(exc):
                raise
            print(f"backup-monitor: cannot store {secret.parameter}: {_failure(exc, values)}", file=sys.stderr)
            return EXIT_FAILED
        print(f"backup-monitor: stored {secret.parameter} in {deployment.region}", file=sys.stderr)
    return EXIT_OK


def check(args: argparse.Namespace, deployment: Deployment) -> int:
    """Every parameter the deploy will read exists in the region, as a SecureString (no value is read)."""
    ssm = _ssm(deployment.region)
    names = [s.parameter for s in deployment.secrets]
    found: dict[str, dict[str, Any]] = {}
    try:
        paginator = ssm.get_paginator("describe_parameters")
        for page in paginator.paginate(ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": names}]):
            found.update({str(p.get("Name")): dict(p) for p in page.get("Parameters", [])})
    except Exception as exc:
        if not _is_aws_error(exc):
            raise
        print(f"backup-monitor: cannot list the parameters in {deployment.region}: {_failure(exc)}", file=sys.stderr)
        return EXIT_FAILED
    problems = []
    for secret in deployment.secrets:
        description = found.get(secret.parameter)
        if description is None:
            problems.append(f"{secret.parameter} ({secret.label}) is missing")
        elif description.get("Type") != "SecureString":
            problems.append(f"{secret.parameter} ({secret.label}) is a {description.get('Type')}, not a SecureString")
        elif deployment.kms_key and not _same_key(str(description.get("KeyId", "")), deployment.kms_key):
            problems.append(
                f"{secret.parameter} ({secret.label}) is encrypted with {description.get('KeyId')}, but the "
                "function may decrypt only SecretsKmsKeyArn"
            )
    if problems:
        print(f"backup-monitor: in {deployment.region} (from {deployment.region_from}):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        print(f"store them with: {fix_command(args, deployment.region)}", file=sys.stderr)
        return EXIT_FAILED
    if not deployment.alarm_email:  # the template's rule would refuse the deploy, after the build: say it now
        print(
            f"backup-monitor: the secrets are in {deployment.region}, but AlarmEmail is not set: add "
            f'AlarmEmail="you@example.com" (or AlarmEmail="none") to parameter_overrides in {args.config_file} '
            f"[{args.config_env}.deploy.parameters], or pass it with --parameter-overrides",
            file=sys.stderr,
        )
        return EXIT_FAILED
    print(
        f"backup-monitor: the {len(names)} parameter(s) the deploy reads are in {deployment.region}: "
        + ", ".join(names),
        file=sys.stderr,
    )
    return EXIT_OK


def _same_key(key_id: str, wanted: str) -> bool:
    """Whether SSM's KeyId (an ARN, a key id) names the key of SecretsKmsKeyArn."""
    return key_id == wanted or wanted.endswith("/" + key_id)


def _is_aws_error(exc: Exception) -> bool:
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # pragma: no cover - boto3 brings botocore
        return False
    return isinstance(exc, BotoCoreError | ClientError)


def add_parser(sub: Any) -> None:
    """The `secrets` command and its `put` and `check` subcommands (on `backup-monitor`'s subparsers)."""
    parser = sub.add_parser(
        "secrets",
        help="store (put) or check the deployment's secrets in SSM Parameter Store, in the stack's region",
        description=wrapped(
            "The SecureString parameters the deployed function reads, named as `sam deploy` will name them "
            "(samconfig.toml over the template's defaults), in the stack's region. Needs the aws extra."
        ),
        epilog=exit_statuses(SECRETS_EXIT_STATUSES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="secrets_command", metavar="ACTION", required=True)
    put_parser = actions.add_parser(
        "put",
        help="read each secret from standard input (hidden prompt on a terminal, one line each otherwise) and "
        "store it as a SecureString (overwriting)",
        description=wrapped(
            "Read each secret from standard input (a hidden prompt on a terminal, one line each otherwise: the "
            "Scalingo API token, one per shard, then the webhook URL or bot token, the success webhook if set, the "
            "signing secret with SlackInteractivity=enabled), check them all, then store each as a SecureString in "
            "the stack's region. No value is ever printed."
        ),
        epilog=exit_statuses(SECRETS_EXIT_STATUSES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    put_parser.add_argument(
        "--only", action="append", metavar="PARAMETER", help="store only this parameter (repeatable; to rotate one)"
    )
    check_parser = actions.add_parser(
        "check",
        help="confirm every parameter the deploy reads exists as a SecureString (exit 1 naming the missing)",
        epilog=exit_statuses(SECRETS_EXIT_STATUSES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for each in (put_parser, check_parser):
        each.add_argument("--region", help="the stack's region (default: samconfig.toml's, else AWS_REGION)")
        each.add_argument(
            "--config-file", default="samconfig.toml", help="samconfig file (default: samconfig.toml, if present)"
        )
        each.add_argument("--config-env", default="default", help="samconfig environment (default: default)")
        each.add_argument(
            "--parameter-overrides",
            metavar="'KEY=VALUE ...'",
            help="template parameters instead of samconfig's parameter_overrides (as with sam deploy)",
        )


def run(args: argparse.Namespace, stdin: IO[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    try:
        deployment = resolve(
            region=args.region,
            config_file=Path(args.config_file),
            config_env=args.config_env,
            overrides=args.parameter_overrides,
            environ=os.environ if environ is None else environ,
        )
        if args.secrets_command == "put":
            return put(args, deployment, sys.stdin if stdin is None else stdin)
        return check(args, deployment)
    except SecretsError as exc:
        print(f"backup-monitor: secrets: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("backup-monitor: secrets: interrupted, nothing more stored", file=sys.stderr)
        return 130
