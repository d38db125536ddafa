"""Every environment variable the monitor reads, with its default, range and meaning: one list.

`config.Settings.from_env` takes each number's default and range from here, `backup-monitor CMD --help` lists
the variables of its command from here, and `docs/configuration.md` is generated from here
(`make docs`; a test fails when the committed page and this list disagree). Pure data, no import of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

# Where a variable is read: by the command (`backup-monitor check`, `status`), by the Lambda, or both. The
# Lambda's settings are its environment, set by template.yaml from the stack's parameters (a test checks every
# Lambda variable below has one).
BOTH, COMMAND, LAMBDA = "both", "command", "lambda"
CHECK, STATUS = "check", "status"
SERVE = "serve"  # `backup-monitor serve`: the Slack interactivity endpoint (the second Lambda too)

GROUPS = ("Scalingo", "Slack", "Detection", "Checks", "State", "Output")


@dataclass(frozen=True, slots=True)
class Variable:
    """One environment variable. `default` is how the documentation shows it; numbers are read with
    `number_default` and the range (`minimum`, `maximum`, `below`: at least, at most, strictly below)."""

    name: str
    group: str
    default: str
    meaning: str
    where: str = BOTH
    commands: tuple[str, ...] = (CHECK,)
    number_default: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    below: float | None = None
    integer: bool = False
    secret: bool = False

    @property
    def range_text(self) -> str:
        """The accepted range in words ("" when the variable is not a number)."""
        if self.number_default is None:
            return ""
        low = f"{self.minimum:g}" if self.minimum is not None else ""
        if self.below is not None:
            return f"{low} to below {self.below:g}" if low else f"below {self.below:g}"
        if self.maximum is not None:
            return f"{low} to {self.maximum:g}" if low else f"at most {self.maximum:g}"
        return f"at least {low}" if low else ""


def _number(
    name: str,
    group: str,
    default: float,
    meaning: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    below: float | None = None,
    integer: bool = False,
    where: str = BOTH,
    commands: tuple[str, ...] = (CHECK,),
    shown: str | None = None,
) -> Variable:
    return Variable(
        name,
        group,
        shown if shown is not None else f"{default:g}",
        meaning,
        where,
        commands,
        number_default=default,
        minimum=minimum,
        maximum=maximum,
        below=below,
        integer=integer,
    )


_READ_BY_BOTH = (CHECK, STATUS)

VARIABLES: tuple[Variable, ...] = (
    # Scalingo
    Variable(
        "SCALINGO_API_TOKEN",
        "Scalingo",
        "none",
        "The Scalingo API token, in clear (the command). Never logged, never posted.",
        COMMAND,
        secret=True,
    ),
    Variable(
        "SCALINGO_API_TOKEN_PARAMETER",
        "Scalingo",
        "none",
        "Name of an SSM SecureString parameter holding the API token (the Lambda; the command too with the `aws` "
        "extra). Set only one of it and SCALINGO_API_TOKEN.",
    ),
    Variable(
        "SCALINGO_API_TOKEN_PARAMETERS",
        "Scalingo",
        "none",
        "Several Scalingo accounts: comma-separated SSM SecureString names, one API token each; each is a shard, "
        "checked on its own (`--shard ID`). Instead of the two above; not with MONITORED_DATABASES.",
        commands=_READ_BY_BOTH,
    ),
    Variable(
        "SCALINGO_REGIONS",
        "Scalingo",
        "osc-fr1",
        "Comma-separated Scalingo regions to watch.",
        commands=_READ_BY_BOTH,
    ),
    Variable(
        "MONITORED_DATABASES",
        "Scalingo",
        "empty: discover all",
        "Comma-separated `app/addon_id` (in the first region) or `region/app/addon_id`: only these are watched.",
        commands=_READ_BY_BOTH,
    ),
    Variable(
        "EXCLUDE_APPS",
        "Scalingo",
        "`*-pr[0-9]*` (review apps)",
        "Comma-separated glob patterns on app names that discovery leaves out; set but empty: watch every app.",
        commands=_READ_BY_BOTH,
    ),
    _number(
        "SCALINGO_API_RATE_LIMIT",
        "Scalingo",
        40,
        "Requests per minute the monitor allows itself on Scalingo's main API. Scalingo allows 60 per user; the "
        "rest is left to the token's owner (their CLI and dashboard share the quota). Above 60 only for a token "
        "Scalingo granted more.",
        minimum=1,
        maximum=100_000,
        integer=True,
    ),
    Variable(
        "SCALINGO_AUTH_URL",
        "Scalingo",
        "`https://auth.scalingo.com`",
        "Override of the token exchange's base URL (tests, proxies): https, or http on loopback.",
        COMMAND,
    ),
    Variable(
        "SCALINGO_API_URL",
        "Scalingo",
        "`https://api.{region}.scalingo.com`",
        "Override of the main API's base URL; `{region}` is substituted.",
        COMMAND,
    ),
    Variable(
        "SCALINGO_DB_API_URL",
        "Scalingo",
        "`https://db-api.{region}.scalingo.com`",
        "Override of the database API's base URL; `{region}` is substituted.",
        COMMAND,
    ),
    # Slack
    Variable(
        "SLACK_WEBHOOK_URL",
        "Slack",
        "none",
        "A Slack incoming webhook URL, in clear (the command): https only (http on loopback). With no Slack "
        "setting at all, messages are printed to standard output.",
        COMMAND,
        secret=True,
    ),
    Variable(
        "SLACK_WEBHOOK_URL_PARAMETER",
        "Slack",
        "none",
        "Name of an SSM SecureString parameter holding the webhook URL.",
    ),
    Variable(
        "SLACK_BOT_TOKEN",
        "Slack",
        "none",
        "A Slack bot token (`xoxb-`, scope `chat:write`), in clear (the command): threads, and edits on resolve. "
        "Not with a webhook.",
        COMMAND,
        secret=True,
    ),
    Variable(
        "SLACK_BOT_TOKEN_PARAMETER",
        "Slack",
        "none",
        "Name of an SSM SecureString parameter holding the bot token.",
    ),
    Variable(
        "SLACK_CHANNEL", "Slack", "none", "The channel id the bot posts to (e.g. C0123456789); required with a bot."
    ),
    Variable(
        "SLACK_MENTION",
        "Slack",
        "empty",
        "Mentions added to the first message of a new critical incident only, e.g. `<!here>` or `<@U123ABC>`.",
    ),
    Variable(
        "SLACK_SUCCESS_CHANNEL",
        "Slack",
        "none",
        "With a bot: success notices and download links go to this channel instead of SLACK_CHANNEL.",
    ),
    Variable(
        "SLACK_SUCCESS_WEBHOOK_URL",
        "Slack",
        "none",
        "Success notices and download links go to this incoming webhook instead (in clear: the command).",
        COMMAND,
        secret=True,
    ),
    Variable(
        "SLACK_SUCCESS_WEBHOOK_URL_PARAMETER",
        "Slack",
        "none",
        "Name of an SSM SecureString parameter holding that success webhook URL.",
    ),
    Variable(
        "SLACK_API_URL",
        "Slack",
        "Slack's",
        "Override of the Web API's base URL (tests).",
        COMMAND,
    ),
    Variable(
        "SUCCESS_NOTICES",
        "Slack",
        "digest",
        "Successful backups: `each` (one message each), `digest` (one per check), `off`.",
    ),
    Variable(
        "DOWNLOAD_LINKS",
        "Slack",
        "true",
        "Attach Scalingo's pre-signed download link to successes. Anyone who can read the channel can download "
        "the database while the link lives: post to a private channel, or set `false`.",
    ),
    Variable(
        "SLACK_INTERACTIVE",
        "Slack",
        "false",
        "`true` once the interactivity endpoint is deployed (`backup-monitor serve`, or the stack's "
        "interactions function) and its URL is in the Slack app: incidents carry Acknowledge and Silence 24 h "
        "buttons, and successes a Get download link button INSTEAD of the pre-signed link (the link is made when "
        "clicked and shown to the clicker only: no token in the channel). Grouped messages (a storm) carry none.",
        commands=(CHECK, SERVE),
    ),
    Variable(
        "SLACK_SIGNING_SECRET",
        "Slack",
        "none",
        "The Slack app's signing secret, in clear (the command `backup-monitor serve`): every click is checked "
        "against it. Never logged.",
        COMMAND,
        commands=(SERVE,),
        secret=True,
    ),
    Variable(
        "SLACK_SIGNING_SECRET_PARAMETER",
        "Slack",
        "none",
        "Name of an SSM SecureString parameter holding the signing secret (the interactivity endpoint). Set only "
        "one of it and SLACK_SIGNING_SECRET.",
        commands=(SERVE,),
    ),
    Variable(
        "DOWNLOAD_ALLOWED_USERS",
        "Slack",
        "empty: anyone in the channel",
        "Who may click Get download link: comma-separated Slack user ids (`U…`, `W…`) and user group ids (`S…`, "
        "members read with the bot token, scope `usergroups:read`: a group needs SLACK_BOT_TOKEN or its "
        "parameter). Anyone else is told why not.",
        commands=(SERVE,),
    ),
    _number(
        "GROUP_WAIT_SECONDS",
        "Slack",
        10,
        "How long the first findings of a check wait for others, to be announced with them.",
        minimum=0,
        maximum=120,
    ),
    Variable(
        "RUNBOOK_URL",
        "Slack",
        "none",
        "A Runbook link in the footer of every alert and reminder: https only (http on loopback), no "
        "credentials, at most 1,000 characters; a query or fragment is kept.",
    ),
    Variable(
        "DAILY_REPORT_AT",
        "Slack",
        "08:00 UTC",
        "When the daily report is posted: `HH:MM Area/City` (e.g. `09:00 Europe/Paris`) or `HH:MM UTC`; empty or "
        "`off`: no report.",
        commands=_READ_BY_BOTH,
    ),
    # Detection
    _number(
        "MISSING_BACKUP_GRACE_HOURS",
        "Detection",
        3,
        "How late a scheduled backup may be before it is missing (a day or more would hide every missed slot).",
        minimum=0,
        below=24,
        commands=_READ_BY_BOTH,
    ),
    _number(
        "STUCK_BACKUP_HOURS",
        "Detection",
        6,
        "A backup in progress for longer is stuck (and no longer answers for its slot).",
        minimum=0.5,
        maximum=24,
        commands=_READ_BY_BOTH,
    ),
    _number(
        "SIZE_DROP_RATIO",
        "Detection",
        0.5,
        "Share of the median size of the last 7 backups below which a done backup looks truncated.",
        minimum=0,
        maximum=0.95,
        commands=_READ_BY_BOTH,
    ),
    _number(
        "PITR_MAX_LAG_HOURS",
        "Detection",
        6,
        "Point-in-time recovery whose latest restore point is older than this is behind (critical).",
        minimum=0.5,
        maximum=24 * 7,
        commands=_READ_BY_BOTH,
    ),
    _number(
        "REMIND_EVERY_HOURS",
        "Detection",
        24,
        "Reminder period of an open incident; 0: never, otherwise at least 1.",
        minimum=0,
        maximum=24 * 30,
        commands=_READ_BY_BOTH,
    ),
    _number(
        "LOOKBACK_HOURS",
        "Detection",
        48,
        "At a database's first check, backups older than this are recorded silently.",
        minimum=0,
        maximum=24 * 90,
    ),
    _number(
        "VERIFY_ARCHIVES_EVERY_DAYS",
        "Detection",
        7,
        "Download and check the newest usable archive of each database this often; 0: never.",
        minimum=0,
        maximum=366,
    ),
    _number(
        "VERIFY_MAX_GB",
        "Detection",
        5,
        "Archives larger than this (GB, 10^9 bytes) are not downloaded for verification: said once, as a warning.",
        minimum=0.001,
        maximum=1000,
    ),
    # Checks
    _number("MAX_WORKERS", "Checks", 8, "Databases read concurrently.", minimum=1, maximum=64, integer=True),
    Variable(
        "CHECK_TIME_LIMIT_SECONDS",
        "Checks",
        "unlimited",
        "The check's whole budget, at least 1 (the Lambda uses its remaining time less 60 s; the smaller wins). No "
        "database is started in its last 20 s, so what was read is still sent and saved; what is left goes "
        "first at the next check.",
        COMMAND,
    ),
    _number(
        "DISCOVERY_EVERY_HOURS",
        "Checks",
        6,
        "How often a discovery pass (list the apps, then each app's addons) starts once the last one ended; "
        "0: a pass at every check.",
        minimum=0,
        maximum=168,
    ),
    _number(
        "SWEEP_EVERY_HOURS",
        "Checks",
        6,
        "A database with no news expected is read again this long after its last read (manual backups, status "
        "and schedule changes); 0: every database at every check.",
        minimum=0,
        maximum=24,
    ),
    _number(
        "HTTP_TIMEOUT_SECONDS",
        "Checks",
        10,
        "Wall-clock limit of every Scalingo call (connect, retries and the whole answer); DynamoDB's read timeout.",
        minimum=0.1,
        maximum=120,
        commands=_READ_BY_BOTH,
    ),
    # State
    Variable(
        "STATE_TABLE",
        "State",
        "none",
        "DynamoDB table holding the state (the Lambda; the command too with the `aws` extra). boto3's "
        "AWS_ENDPOINT_URL_DYNAMODB is honoured.",
        commands=_READ_BY_BOTH,
    ),
    Variable(
        "STATE_PATH",
        "State",
        "`backup-monitor/state.sqlite3` in the user's state directory (`$XDG_STATE_HOME`, else `~/.local/state`)",
        "SQLite state file, used when STATE_TABLE is unset. An explicit path must be in an existing, writable "
        "directory; the default directory is created. A check holds a lock on it (`STATE_PATH.lock`).",
        COMMAND,
        commands=_READ_BY_BOTH,
    ),
    # Output
    Variable(
        "LOG_LEVEL",
        "Output",
        "WARNING",
        "The command's log level on standard error: DEBUG, INFO, WARNING, ERROR or CRITICAL (the Lambda: "
        "POWERTOOLS_LOG_LEVEL, a stack parameter).",
        COMMAND,
        commands=_READ_BY_BOTH,
    ),
)

BY_NAME: dict[str, Variable] = {v.name: v for v in VARIABLES}
LAMBDA_VARIABLES = tuple(v.name for v in VARIABLES if v.where in (BOTH, LAMBDA))


def for_command(command: str) -> tuple[Variable, ...]:
    """The variables `backup-monitor COMMAND` reads."""
    return tuple(v for v in VARIABLES if command in v.commands and v.where in (BOTH, COMMAND))
