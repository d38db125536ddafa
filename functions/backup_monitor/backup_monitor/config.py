"""Settings: every configuration value, read and validated once from the environment."""

from __future__ import annotations

import fnmatch
import hashlib
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import time
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from backup_monitor.variables import BY_NAME

DEFAULT_AUTH_URL = "https://auth.scalingo.com"
DEFAULT_API_URL = "https://api.{region}.scalingo.com"
DEFAULT_DB_API_URL = "https://db-api.{region}.scalingo.com"
DEFAULT_REGION = "osc-fr1"

_REGION_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SUCCESS_NOTICE_MODES = ("each", "digest", "off")
DEFAULT_DAILY_REPORT_AT = "08:00 UTC"
# Scalingo review apps are named `<parent app>-pr<number>`: short-lived, their databases are not watched.
DEFAULT_EXCLUDE_APPS = ("*-pr[0-9]*",)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_LOG_LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}  # what `logging` accepted before they were checked
LINK_MAX = 1000  # RUNBOOK_URL: a link in every alert's footer (Slack's context text holds 3,000 characters)
# SCALINGO_API_TOKEN_PARAMETERS: SSM parameter names (SSM allows these characters, 2,048 of them at most).
_PARAMETER_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-/]{1,2048}$")
_SLACK_ID_RE = re.compile(r"^[UWS][A-Z0-9]{2,20}$")  # DOWNLOAD_ALLOWED_USERS: user (U, W) and user group (S) ids
SHARD_SLUG_MAX = 24  # characters of the parameter name's last part kept in a shard's id
# STATE_PATH's default before version 0.19, relative to the working directory: still used where it exists.
LEGACY_STATE_PATH = "backup-monitor-state.sqlite3"
STATE_FILE_NAME = "state.sqlite3"


class ConfigError(ValueError):
    """A configuration value is missing or wrong; the message names the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Target:
    """One monitored database: the addon of an app in a region."""

    region: str
    app: str
    addon_id: str

    @property
    def key(self) -> str:
        """The state key: the addon in its region. Stable across checks and across renames of the app (the
        database API knows only the addon id); the app name is display data."""
        return state_key(self.region, self.addon_id)

    @property
    def name(self) -> str:
        """`region/app/addon_id`: how discovery lists it (and the state key before the addon became the identity)."""
        return f"{self.region}/{self.app}/{self.addon_id}"


def state_key(region: str, addon_id: str) -> str:
    return f"{region}/{addon_id}"


def shard_id(parameter: str) -> str:
    """The id of the shard whose API token is in SSM parameter `parameter`: the last part of the name, in lower
    case letters, digits and dashes (at most SHARD_SLUG_MAX), then 6 hex digits of its SHA-256, so two names
    with the same last part in different paths differ. Derived from the name alone: reordering
    SCALINGO_API_TOKEN_PARAMETERS changes no id (and so no state key)."""
    tail = parameter.rstrip("/").rsplit("/", 1)[-1].lower()
    slug = re.sub(r"[^a-z0-9]+", "-", tail).strip("-")[:SHARD_SLUG_MAX].strip("-") or "token"
    return f"{slug}-{hashlib.sha256(parameter.encode()).hexdigest()[:6]}"


def shard_key(prefix: str, rest: str, shard: str = "") -> str:
    """The state key of a record or blob a check keeps one of (the discovery, the cursor, the bearer, the
    report...): `prefix + rest` without a shard, exactly as before shards existed; `prefix + shard/ + rest` for
    a shard. `rest` never holds a slash where a shard could be mistaken for it (regions have none)."""
    return f"{prefix}{shard}/{rest}" if shard else prefix + rest


class UnknownShardError(ValueError):
    """An invocation names a shard this configuration does not have."""


@dataclass(frozen=True, slots=True)
class ReportTime:
    """DAILY_REPORT_AT: a local wall-clock time in an IANA time zone."""

    at: time
    zone: str

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    def __str__(self) -> str:
        return f"{self.at:%H:%M} {self.zone}"


@dataclass(frozen=True, slots=True)
class Policy:
    """The detection thresholds the rules use (pure data)."""

    missing_grace_hours: float = 3.0
    stuck_hours: float = 6.0
    size_drop_ratio: float = 0.5
    remind_every_hours: float = 24.0
    lookback_hours: float = 48.0
    success_notices: str = "digest"
    cannot_check_after: int = 3
    pitr_max_lag_hours: float = 6.0


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the monitor needs to run one check; built once, passed down."""

    api_token: str | None = field(default=None, repr=False)
    api_token_parameter: str | None = None
    # SCALINGO_API_TOKEN_PARAMETERS: one SSM parameter per Scalingo account, each a shard checked on its own
    # (`for_shard`); `shard` is the id of the one these settings check ("" with a single token: no shard).
    api_token_parameters: tuple[str, ...] = ()
    shard: str = ""
    regions: tuple[str, ...] = (DEFAULT_REGION,)
    monitored: tuple[Target, ...] = ()
    exclude_apps: tuple[str, ...] = DEFAULT_EXCLUDE_APPS
    auth_url: str = DEFAULT_AUTH_URL
    api_url: str = DEFAULT_API_URL
    db_api_url: str = DEFAULT_DB_API_URL
    slack_webhook_url: str | None = field(default=None, repr=False)
    slack_webhook_url_parameter: str | None = None
    slack_bot_token: str | None = field(default=None, repr=False)
    slack_bot_token_parameter: str | None = None
    slack_channel: str | None = None
    slack_api_url: str | None = None
    state_table: str | None = None
    state_path: str = LEGACY_STATE_PATH
    # STATE_PATH unset: the per-user default (its directory is made when the store opens), or the file an older
    # version left in the working directory (kept, with a warning, rather than starting from nothing).
    state_path_default: bool = False
    policy: Policy = field(default_factory=Policy)
    download_links: bool = True
    slack_mention: str = ""
    max_workers: int = 8
    api_rate_limit: int = 40
    check_time_limit: float | None = None
    discovery_every_hours: float = 6.0
    sweep_every_hours: float = 6.0
    http_timeout: float = 10.0
    daily_report: ReportTime | None = None
    verify_archives_every_days: float = 7.0
    verify_max_gb: float = 5.0
    group_wait: float = 10.0
    slack_success_channel: str | None = None
    slack_success_webhook_url: str | None = field(default=None, repr=False)
    slack_success_webhook_url_parameter: str | None = None
    runbook_url: str | None = None
    # The Slack buttons and their endpoint (interactions_ui, the endpoint's interactions.py).
    slack_interactive: bool = False
    slack_signing_secret: str | None = field(default=None, repr=False)
    slack_signing_secret_parameter: str | None = None
    download_allowed_users: tuple[str, ...] = ()  # Slack user ids (U…, W…) and user group ids (S…)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Validate every variable at once; raise ConfigError naming the first bad one."""
        reader = _Reader(env)
        regions = reader.regions("SCALINGO_REGIONS")
        # Ranges that keep every alarm audible: a grace of a day or more would hide every missed slot, a
        # stuck limit above a day lets a hung backup stand for the next slot, a ratio of 1 flags half of
        # all backups.
        policy = Policy(
            missing_grace_hours=reader.spec("MISSING_BACKUP_GRACE_HOURS"),
            stuck_hours=reader.spec("STUCK_BACKUP_HOURS"),
            size_drop_ratio=reader.spec("SIZE_DROP_RATIO"),
            remind_every_hours=reader.reminder("REMIND_EVERY_HOURS"),
            lookback_hours=reader.spec("LOOKBACK_HOURS"),
            success_notices=reader.choice("SUCCESS_NOTICES", "digest", SUCCESS_NOTICE_MODES),
            pitr_max_lag_hours=reader.spec("PITR_MAX_LAG_HOURS"),
        )
        settings = cls(
            api_token=reader.text("SCALINGO_API_TOKEN"),
            api_token_parameter=reader.text("SCALINGO_API_TOKEN_PARAMETER"),
            api_token_parameters=reader.parameter_names("SCALINGO_API_TOKEN_PARAMETERS"),
            regions=regions,
            monitored=reader.targets("MONITORED_DATABASES", regions),
            exclude_apps=reader.patterns("EXCLUDE_APPS", DEFAULT_EXCLUDE_APPS),
            auth_url=reader.url("SCALINGO_AUTH_URL", DEFAULT_AUTH_URL),
            api_url=reader.url("SCALINGO_API_URL", DEFAULT_API_URL),
            db_api_url=reader.url("SCALINGO_DB_API_URL", DEFAULT_DB_API_URL),
            slack_webhook_url=reader.secret_url("SLACK_WEBHOOK_URL"),
            slack_webhook_url_parameter=reader.text("SLACK_WEBHOOK_URL_PARAMETER"),
            slack_bot_token=reader.text("SLACK_BOT_TOKEN"),
            slack_bot_token_parameter=reader.text("SLACK_BOT_TOKEN_PARAMETER"),
            slack_channel=reader.text("SLACK_CHANNEL"),
            slack_api_url=reader.optional_url("SLACK_API_URL"),
            state_table=reader.text("STATE_TABLE"),
            state_path=reader.text("STATE_PATH") or LEGACY_STATE_PATH,
            state_path_default=reader.text("STATE_PATH") is None,
            policy=policy,
            download_links=reader.boolean("DOWNLOAD_LINKS", True),
            slack_mention=reader.mention("SLACK_MENTION"),
            max_workers=int(reader.spec("MAX_WORKERS")),
            # Scalingo allows 60 a minute per user: leave a third to the people who own the token.
            api_rate_limit=int(reader.spec("SCALINGO_API_RATE_LIMIT")),
            check_time_limit=reader.optional_number("CHECK_TIME_LIMIT_SECONDS", minimum=1),
            discovery_every_hours=reader.spec("DISCOVERY_EVERY_HOURS"),
            # A database with no news due is read this often (0: every database at every check; see cadence.py).
            sweep_every_hours=reader.spec("SWEEP_EVERY_HOURS"),
            http_timeout=reader.spec("HTTP_TIMEOUT_SECONDS"),
            daily_report=reader.report_time("DAILY_REPORT_AT"),
            verify_archives_every_days=reader.spec("VERIFY_ARCHIVES_EVERY_DAYS"),
            verify_max_gb=reader.spec("VERIFY_MAX_GB"),
            group_wait=reader.spec("GROUP_WAIT_SECONDS"),
            slack_success_channel=reader.text("SLACK_SUCCESS_CHANNEL"),
            slack_success_webhook_url=reader.secret_url("SLACK_SUCCESS_WEBHOOK_URL"),
            slack_success_webhook_url_parameter=reader.text("SLACK_SUCCESS_WEBHOOK_URL_PARAMETER"),
            runbook_url=reader.link("RUNBOOK_URL"),
            slack_interactive=reader.boolean("SLACK_INTERACTIVE", False),
            slack_signing_secret=reader.text("SLACK_SIGNING_SECRET"),
            slack_signing_secret_parameter=reader.text("SLACK_SIGNING_SECRET_PARAMETER"),
            download_allowed_users=reader.slack_ids("DOWNLOAD_ALLOWED_USERS"),
        )
        settings.validate_sources()
        if settings.state_path_default and not settings.state_table:
            settings = replace(settings, state_path=default_state_path(env))
        return settings

    def validate_sources(self) -> None:
        """Check the combinations: one token source, a channel for the bot."""
        if self.api_token_parameters:
            other = "SCALINGO_API_TOKEN" if self.api_token else "SCALINGO_API_TOKEN_PARAMETER"
            if self.api_token or self.api_token_parameter:
                raise ConfigError(
                    "SCALINGO_API_TOKEN_PARAMETERS", f"set either it (one parameter per token) or {other}, not both"
                )
            if self.monitored:  # each shard watches what its own token can see: it discovers it
                raise ConfigError(
                    "MONITORED_DATABASES",
                    "cannot be used with SCALINGO_API_TOKEN_PARAMETERS (each shard discovers its own account's "
                    "databases; EXCLUDE_APPS leaves apps out)",
                )
            ids: dict[str, str] = {}
            for name in self.api_token_parameters:
                taken = ids.setdefault(shard_id(name), name)
                if taken != name:  # not seen in practice (6 hex digits of SHA-256 and the name's last part)
                    raise ConfigError(
                        "SCALINGO_API_TOKEN_PARAMETERS", f"{taken!r} and {name!r} have the same shard id; rename one"
                    )
        elif not self.api_token and not self.api_token_parameter:
            raise ConfigError(
                "SCALINGO_API_TOKEN",
                "is not set (nor SCALINGO_API_TOKEN_PARAMETER or SCALINGO_API_TOKEN_PARAMETERS); "
                "the API token is needed",
            )
        if self.api_token and self.api_token_parameter:
            raise ConfigError("SCALINGO_API_TOKEN_PARAMETER", "set only one of it and SCALINGO_API_TOKEN")
        bot = self.slack_bot_token or self.slack_bot_token_parameter
        webhook = self.slack_webhook_url or self.slack_webhook_url_parameter
        if bot and webhook:
            raise ConfigError("SLACK_BOT_TOKEN", "set either a Slack bot token or a webhook URL, not both")
        if bot and not self.slack_channel:
            raise ConfigError("SLACK_CHANNEL", "is required with a Slack bot token")
        success_webhook = self.slack_success_webhook_url or self.slack_success_webhook_url_parameter
        if self.slack_success_webhook_url and self.slack_success_webhook_url_parameter:
            raise ConfigError("SLACK_SUCCESS_WEBHOOK_URL_PARAMETER", "set only one of it and SLACK_SUCCESS_WEBHOOK_URL")
        if self.slack_success_channel and success_webhook:
            raise ConfigError("SLACK_SUCCESS_CHANNEL", "set either it or a success webhook URL, not both")
        if self.slack_success_channel and not bot:
            raise ConfigError("SLACK_SUCCESS_CHANNEL", "needs a Slack bot token (SLACK_BOT_TOKEN)")
        if self.slack_signing_secret and self.slack_signing_secret_parameter:
            raise ConfigError("SLACK_SIGNING_SECRET_PARAMETER", "set only one of it and SLACK_SIGNING_SECRET")
        groups = [i for i in self.download_allowed_users if i.startswith("S")]
        if groups and not bot:
            raise ConfigError(
                "DOWNLOAD_ALLOWED_USERS",
                f"names the user group {groups[0]}: its members are read with the bot token (SLACK_BOT_TOKEN or "
                "SLACK_BOT_TOKEN_PARAMETER, scope usergroups:read); list user ids instead, or give the bot token",
            )

    @property
    def download_allowed_groups(self) -> tuple[str, ...]:
        """The user group ids (`S…`) of DOWNLOAD_ALLOWED_USERS."""
        return tuple(i for i in self.download_allowed_users if i.startswith("S"))

    def with_secrets(
        self,
        api_token: str | None,
        webhook_url: str | None,
        bot_token: str | None,
        success_webhook_url: str | None = None,
        signing_secret: str | None = None,
    ) -> Settings:
        """A copy with secrets resolved (from SSM in the Lambda); a webhook read from SSM is checked too."""
        if webhook_url:
            check_secret_url("SLACK_WEBHOOK_URL_PARAMETER", webhook_url)
        if success_webhook_url:
            check_secret_url("SLACK_SUCCESS_WEBHOOK_URL_PARAMETER", success_webhook_url)
        return replace(
            self,
            api_token=api_token or self.api_token,
            slack_webhook_url=webhook_url or self.slack_webhook_url,
            slack_bot_token=bot_token or self.slack_bot_token,
            slack_success_webhook_url=success_webhook_url or self.slack_success_webhook_url,
            slack_signing_secret=signing_secret or self.slack_signing_secret,
        )

    @property
    def shards(self) -> dict[str, str]:
        """The shards of SCALINGO_API_TOKEN_PARAMETERS, id -> parameter name, in the listed order (empty with a
        single token)."""
        return {shard_id(name): name for name in self.api_token_parameters}

    @property
    def api_token_variable(self) -> str:
        """The variable naming the SSM parameter these settings read the API token from (for error messages)."""
        return "SCALINGO_API_TOKEN_PARAMETERS" if self.shard else "SCALINGO_API_TOKEN_PARAMETER"

    def for_shard(self, shard: str) -> Settings:
        """The settings of one shard (by id, or by its parameter name): its token read from its own parameter,
        its own state keys; everything else shared. UnknownShardError when there is no such shard."""
        shards = self.shards
        wanted = shard if shard in shards else shard_id(shard) if shard in self.api_token_parameters else None
        if wanted is None:
            if not shards:
                raise UnknownShardError(
                    f"no shard {shard!r}: this configuration has one API token (SCALINGO_API_TOKEN_PARAMETERS "
                    "is not set)"
                )
            known = ", ".join(f"{key} ({name})" for key, name in shards.items())
            raise UnknownShardError(f"no shard {shard!r} in SCALINGO_API_TOKEN_PARAMETERS; the shards are {known}")
        return replace(self, api_token=None, api_token_parameter=shards[wanted], api_token_parameters=(), shard=wanted)

    def singleton_key(self, prefix: str, rest: str) -> str:
        """The key of a record or blob a check keeps one of, in these settings' shard (see shard_key)."""
        return shard_key(prefix, rest, self.shard)

    def excluded(self, app: str) -> bool:
        """Whether EXCLUDE_APPS leaves this app out (case-sensitive globs, as app names are lower case)."""
        return any(fnmatch.fnmatchcase(app, pattern) for pattern in self.exclude_apps)

    def region_url(self, template: str, region: str) -> str:
        """A base URL with `{region}` substituted and no trailing slash."""
        return template.replace("{region}", region).rstrip("/")


def default_state_path(env: Mapping[str, str]) -> str:
    """STATE_PATH's default: `state.sqlite3` in the user's state directory (platformdirs: `$XDG_STATE_HOME` or
    `~/.local/state` under `backup-monitor/` on Linux), so `status` finds the state of `check` from any
    directory. A state file an older version made in the working directory (LEGACY_STATE_PATH) is used as it
    is while the new one does not exist: a cron job upgraded in place keeps its incidents."""
    from platformdirs import user_state_path

    xdg = env.get("XDG_STATE_HOME", "").strip()  # `env`'s own, not only the process's (platformdirs reads that)
    directory = Path(xdg) / "backup-monitor" if xdg else user_state_path("backup-monitor", appauthor=False)
    path = directory / STATE_FILE_NAME
    if not path.exists() and Path(LEGACY_STATE_PATH).is_file():
        return LEGACY_STATE_PATH
    return str(path)


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine (plain http is only acceptable there: tests, local proxies)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_secret_url(name: str, raw: str) -> None:
    """A secret URL (the webhook) must be https, or http on loopback; the value is never echoed."""
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(name, "must be an http(s) URL (value not shown: it is a secret)")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(name, "must be https outside loopback (value not shown: it is a secret)")


class _Reader:
    """Reads one variable at a time, turning each problem into a ConfigError naming it."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str) -> str | None:
        value = self.env.get(name, "").strip()
        return value or None

    def number(
        self,
        name: str,
        default: float,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        below: float | None = None,
        integer: bool = False,
    ) -> float:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = float(int(raw)) if integer else float(raw)
        except ValueError:
            kind = "a whole number" if integer else "a number"
            raise ConfigError(name, f"must be {kind}, got {raw!r}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(name, f"must be a finite number, got {raw!r}")
        if minimum is not None and value < minimum:
            raise ConfigError(name, f"must be at least {minimum:g}, got {raw!r}")
        if maximum is not None and value > maximum:
            raise ConfigError(name, f"must be at most {maximum:g}, got {raw!r}")
        if below is not None and value >= below:
            raise ConfigError(name, f"must be below {below:g}, got {raw!r}")
        return value

    def spec(self, name: str) -> float:
        """A number with the default and range of its entry in variables.VARIABLES (what the docs say)."""
        variable = BY_NAME[name]
        if variable.number_default is None:
            raise KeyError(f"{name} is not a number in variables.VARIABLES")
        return self.number(
            name,
            variable.number_default,
            minimum=variable.minimum,
            maximum=variable.maximum,
            below=variable.below,
            integer=variable.integer,
        )

    def parameter_names(self, name: str) -> tuple[str, ...]:
        """Comma-separated SSM parameter names, each listed once; unset or empty = none."""
        raw = self.text(name)
        if raw is None:
            return ()
        names: list[str] = []
        for item in (part.strip() for part in raw.split(",")):
            if not item:
                continue
            if not _PARAMETER_NAME_RE.match(item) or item.endswith("/") or "//" in item:
                raise ConfigError(
                    name, f"{item!r} is not an SSM parameter name (letters, digits, _ . - and / as in /a/b)"
                )
            if item in names:
                raise ConfigError(name, f"lists {item!r} twice")
            names.append(item)
        if not names:
            raise ConfigError(name, "lists no parameter (leave it unset for a single token)")
        return tuple(names)

    def optional_number(self, name: str, *, minimum: float) -> float | None:
        if self.text(name) is None:
            return None
        return self.number(name, 0.0, minimum=minimum)

    def reminder(self, name: str) -> float:
        """0 (never) or at least an hour: a smaller period would repeat an incident at every check."""
        value = self.spec(name)
        if 0 < value < 1:
            raise ConfigError(name, f"must be 0 (never) or at least 1 hour, got {value:g}")
        return value

    def patterns(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        """Comma-separated glob patterns; unset = the default, set but empty = none."""
        if name not in self.env:
            return default
        patterns = tuple(dict.fromkeys(p.strip() for p in self.env[name].split(",") if p.strip()))
        for pattern in patterns:
            if not re.fullmatch(r"[A-Za-z0-9._*?\[\]!-]{1,128}", pattern):
                raise ConfigError(name, f"{pattern!r} is not a glob pattern on app names (e.g. *-pr[0-9]*)")
        return patterns

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.text(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(name, f"must be true or false, got {raw!r}")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        raw = self.text(name)
        if raw is None:
            return default
        if raw.lower() not in choices:
            raise ConfigError(name, f"must be one of {', '.join(choices)}, got {raw!r}")
        return raw.lower()

    def regions(self, name: str) -> tuple[str, ...]:
        raw = self.text(name)
        if raw is None:
            return (DEFAULT_REGION,)
        regions = tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
        if not regions:
            raise ConfigError(name, "lists no region")
        for region in regions:
            if not _REGION_RE.match(region):
                raise ConfigError(name, f"{region!r} is not a region name (e.g. osc-fr1)")
        return regions

    def targets(self, name: str, regions: tuple[str, ...]) -> tuple[Target, ...]:
        raw = self.text(name)
        if raw is None:
            return ()
        targets: dict[str, Target] = {}
        for item in (part.strip() for part in raw.split(",")):
            if not item:
                continue
            parts = item.split("/")
            if len(parts) == 2:
                target = Target(regions[0], parts[0], parts[1])
            elif len(parts) == 3:
                target = Target(parts[0], parts[1], parts[2])
            else:
                raise ConfigError(name, f"{item!r} is not app/addon_id or region/app/addon_id")
            if not _REGION_RE.match(target.region):
                raise ConfigError(name, f"{item!r} names an invalid region")
            if not (_NAME_RE.match(target.app) and _NAME_RE.match(target.addon_id)):
                raise ConfigError(name, f"{item!r} has an invalid app name or addon id")
            targets[target.key] = target
        return tuple(targets.values())

    def url(self, name: str, default: str) -> str:
        raw = self.text(name)
        if raw is None:
            return default
        parts = urlsplit(raw.replace("{region}", "region"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(name, f"must be an http(s) URL, got {raw!r}")
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise ConfigError(name, f"must be https outside loopback (tokens would travel in clear), got {raw!r}")
        if parts.query or parts.fragment:
            raise ConfigError(name, "must not have a query or fragment")
        return raw.rstrip("/")

    def optional_url(self, name: str) -> str | None:
        if self.text(name) is None:
            return None
        return self.url(name, "")

    def link(self, name: str) -> str | None:
        """A page people open from Slack (RUNBOOK_URL): https, or http on loopback, like the other URLs; a query
        or fragment is kept (wiki pages have them); nothing that would end a Slack link (`|`, `>`, a space)."""
        raw = self.text(name)
        if raw is None:
            return None
        try:
            parts = urlsplit(raw)
            host = parts.hostname
        except ValueError:
            raise ConfigError(name, f"must be an https URL, got {raw!r}") from None
        if "@" in parts.netloc:  # a link everyone in the channel sees must not carry a password
            raise ConfigError(name, "must not contain credentials (value not shown)")
        if len(raw) > LINK_MAX:
            raise ConfigError(name, f"must be at most {LINK_MAX} characters, got {len(raw)}")
        if re.search(r"[\s<>|\"`\\]", raw) or not raw.isprintable():
            raise ConfigError(name, f"must not contain spaces, quotes, <, >, | or control characters, got {raw!r}")
        if parts.scheme not in ("http", "https") or not host:
            raise ConfigError(name, f"must be an https URL, got {raw!r}")
        if parts.scheme == "http" and not is_loopback(host):
            raise ConfigError(name, f"must be https outside loopback, got {raw!r}")
        return raw

    def secret_url(self, name: str) -> str | None:
        raw = self.text(name)
        if raw is None:
            return None
        check_secret_url(name, raw)
        return raw

    def slack_ids(self, name: str) -> tuple[str, ...]:
        """Comma-separated Slack user ids (`U…`, `W…`) and user group ids (`S…`), each once; unset or empty: none."""
        raw = self.text(name)
        if raw is None:
            return ()
        ids: list[str] = []
        for item in (part.strip() for part in raw.split(",")):
            if not item:
                continue
            if not _SLACK_ID_RE.match(item):
                raise ConfigError(
                    name, f"{item!r} is not a Slack user id (U… or W…) or user group id (S…), e.g. U0123ABCD"
                )
            if item not in ids:
                ids.append(item)
        return tuple(ids)

    def mention(self, name: str) -> str:
        raw = self.text(name)
        if raw is None:
            return ""
        if not re.fullmatch(r"(<(!here|!channel|!everyone|@[UW][A-Z0-9]+|!subteam\^[A-Z0-9]+)>\s*)+", raw):
            raise ConfigError(name, f"must be Slack mentions like <!here> or <@U123ABC>, got {raw!r}")
        return raw

    def report_time(self, name: str) -> ReportTime | None:
        """`HH:MM Area/City` or `HH:MM UTC`; unset = the default; empty or `off` = no report."""
        if name not in self.env:
            return parse_report_time(DEFAULT_DAILY_REPORT_AT)
        raw = self.env[name].strip()
        if raw.lower() in ("", "off"):
            return None
        report = parse_report_time(raw)
        if report is None:
            raise ConfigError(name, f"must be HH:MM and a time zone like 09:00 Europe/Paris or 08:00 UTC, got {raw!r}")
        try:
            report.tz  # noqa: B018  (loads the zone: an unknown one fails here, at start)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(name, f"{report.zone!r} is not a known time zone (IANA name like Europe/Paris)") from None
        return report


def log_level(env: Mapping[str, str]) -> str:
    """LOG_LEVEL, the command's log level on standard error (any case; unset = WARNING)."""
    raw = env.get("LOG_LEVEL", "").strip()
    if not raw:
        return "WARNING"
    level = _LOG_LEVEL_ALIASES.get(raw.upper(), raw.upper())
    if level not in LOG_LEVELS:
        raise ConfigError("LOG_LEVEL", f"must be one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return level


def parse_report_time(raw: str) -> ReportTime | None:
    """`HH:MM Zone` as a ReportTime, or None when it is not of that shape."""
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)\s+(\S+)", raw.strip())
    if match is None:
        return None
    return ReportTime(time(int(match.group(1)), int(match.group(2))), match.group(3))
