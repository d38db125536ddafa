"""Builds the clients of a check from the settings: secrets from SSM, the state store, the notifier."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cache
from pathlib import Path

from backup_monitor.config import LEGACY_STATE_PATH, ConfigError, Settings, default_state_path
from backup_monitor.extras import needs_aws
from backup_monitor.monitor import Clients
from backup_monitor.notifiers import BotNotifier, ConsoleNotifier, Notifier, WebhookNotifier
from backup_monitor.scalingo.client import ScalingoClient
from backup_monitor.secrets import SecretReader
from backup_monitor.state.base import StateError, StateStore

logger = logging.getLogger(__name__)


@cache
def shared_reader() -> SecretReader:
    """One secret cache per process (the command, or a Lambda container)."""
    return SecretReader()


def resolve_secrets(settings: Settings, reader: SecretReader | None = None) -> Settings:
    """Read the SecureString parameters named by *_PARAMETER settings (cached for SECRET_MAX_AGE_SECONDS)."""
    names = (
        settings.api_token_parameter,
        settings.slack_webhook_url_parameter,
        settings.slack_bot_token_parameter,
        settings.slack_success_webhook_url_parameter,
        settings.slack_signing_secret_parameter,
    )
    if not any(names):
        return settings
    source = reader or shared_reader()

    def read(name: str | None, variable: str) -> str | None:
        return source.read(name, variable) if name else None

    return settings.with_secrets(
        read(settings.api_token_parameter, settings.api_token_variable),
        read(settings.slack_webhook_url_parameter, "SLACK_WEBHOOK_URL_PARAMETER"),
        read(settings.slack_bot_token_parameter, "SLACK_BOT_TOKEN_PARAMETER"),
        read(settings.slack_success_webhook_url_parameter, "SLACK_SUCCESS_WEBHOOK_URL_PARAMETER"),
        read(settings.slack_signing_secret_parameter, "SLACK_SIGNING_SECRET_PARAMETER"),
    )


def build_store(settings: Settings) -> StateStore:
    """The state store, opened for the settings' shard (its cursor and bearer); a state file (or DynamoDB
    client) that cannot be opened is a ConfigError naming STATE_PATH (or STATE_TABLE): a bad setting, found at
    start before anything is contacted."""
    if settings.state_table:
        with needs_aws("STATE_TABLE", "a DynamoDB state table"):
            from backup_monitor.state.dynamodb import DynamoStateStore, default_client

        try:
            return DynamoStateStore(settings.state_table, default_client(settings.http_timeout), shard=settings.shard)
        except StateError as exc:
            raise ConfigError("STATE_TABLE", str(exc)) from None
    from backup_monitor.state.sqlite import SqliteStateStore

    if settings.state_path_default:
        _prepare_default_state_path(settings.state_path)
    try:
        return SqliteStateStore(settings.state_path, shard=settings.shard)
    except StateError as exc:
        raise ConfigError("STATE_PATH", str(exc)) from None


def build_notifier(settings: Settings) -> Notifier:
    if settings.slack_bot_token and settings.slack_channel:
        return BotNotifier(settings.slack_bot_token, settings.slack_channel, base_url=settings.slack_api_url)
    if settings.slack_webhook_url:
        return WebhookNotifier(settings.slack_webhook_url)
    return ConsoleNotifier()


def build_success_notifier(settings: Settings) -> Notifier | None:
    """Where successes and download links go when not with the alerts (SLACK_SUCCESS_CHANNEL / _WEBHOOK_URL)."""
    if settings.slack_bot_token and settings.slack_success_channel:
        return BotNotifier(settings.slack_bot_token, settings.slack_success_channel, base_url=settings.slack_api_url)
    if settings.slack_success_webhook_url:
        return WebhookNotifier(settings.slack_success_webhook_url)
    return None


def build_scalingo(settings: Settings, renew_token: Callable[[], str | None] | None = None) -> ScalingoClient:
    """The Scalingo client; `renew_token` is asked for a newer API token when the token exchange is refused.

    With SCALINGO_API_TOKEN_PARAMETERS, a check is one shard's (Settings.for_shard): ConfigError otherwise."""
    if settings.api_token_parameters:
        raise ConfigError(
            "SCALINGO_API_TOKEN_PARAMETERS", "a check runs for one shard (one token) at a time: name the shard"
        )
    return ScalingoClient.from_settings(settings, renew_token=renew_token)


def build_clients(settings: Settings, *, dry_run: bool = False, store: StateStore | None = None) -> Clients:
    """Everything a check talks to; `dry_run` prints instead of sending; `store` if already opened."""
    return Clients(
        scalingo=build_scalingo(settings),
        store=store if store is not None else build_store(settings),
        notifier=ConsoleNotifier() if dry_run else build_notifier(settings),
        success_notifier=None if dry_run else build_success_notifier(settings),
    )


def _prepare_default_state_path(path: str) -> None:
    """STATE_PATH unset: make the per-user state directory (private to the user), or say that the file an older
    version left in the working directory is the one used."""
    if path == LEGACY_STATE_PATH:
        logger.warning(
            "STATE_PATH is unset: using %s in the working directory (the default of older versions); set "
            "STATE_PATH to it, or move it to %s",
            Path(path).absolute(),
            default_state_path({}),
        )
        return
    try:
        Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            "STATE_PATH", f"cannot make the state directory {Path(path).parent} ({exc.strerror})"
        ) from None
