"""Builds the clients of a check from the settings: secrets from SSM, the state store, the notifier."""

from __future__ import annotations

from backup_monitor.config import ConfigError, Settings
from backup_monitor.monitor import Clients
from backup_monitor.notifiers import BotNotifier, ConsoleNotifier, Notifier, WebhookNotifier
from backup_monitor.scalingo.client import ScalingoClient
from backup_monitor.state.base import StateStore

SECRET_MAX_AGE_SECONDS = 300


def resolve_secrets(settings: Settings) -> Settings:
    """Read the SecureString parameters named by *_PARAMETER settings (cached by Powertools)."""
    names = (settings.api_token_parameter, settings.slack_webhook_url_parameter, settings.slack_bot_token_parameter)
    if not any(names):
        return settings
    from aws_lambda_powertools.utilities import parameters

    def read(name: str | None, variable: str) -> str | None:
        if not name:
            return None
        try:
            value = parameters.get_parameter(name, decrypt=True, max_age=SECRET_MAX_AGE_SECONDS)
        except parameters.exceptions.GetParameterError as exc:
            cause = type(exc.__cause__).__name__ if exc.__cause__ else "error"
            raise ConfigError(variable, f"cannot read SSM parameter {name!r} ({cause})") from None
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(variable, f"SSM parameter {name!r} is empty")
        return value.strip()

    return settings.with_secrets(
        read(settings.api_token_parameter, "SCALINGO_API_TOKEN_PARAMETER"),
        read(settings.slack_webhook_url_parameter, "SLACK_WEBHOOK_URL_PARAMETER"),
        read(settings.slack_bot_token_parameter, "SLACK_BOT_TOKEN_PARAMETER"),
    )


def build_store(settings: Settings) -> StateStore:
    if settings.state_table:
        from backup_monitor.state.dynamodb import DynamoStateStore, default_client

        return DynamoStateStore(settings.state_table, default_client(settings.http_timeout))
    from backup_monitor.state.sqlite import SqliteStateStore

    return SqliteStateStore(settings.state_path)


def build_notifier(settings: Settings) -> Notifier:
    if settings.slack_bot_token and settings.slack_channel:
        return BotNotifier(settings.slack_bot_token, settings.slack_channel, base_url=settings.slack_api_url)
    if settings.slack_webhook_url:
        return WebhookNotifier(settings.slack_webhook_url)
    return ConsoleNotifier()


def build_clients(settings: Settings, *, dry_run: bool = False) -> Clients:
    """Everything a check talks to; `dry_run` prints instead of sending."""
    return Clients(
        scalingo=ScalingoClient.from_settings(settings),
        store=build_store(settings),
        notifier=ConsoleNotifier() if dry_run else build_notifier(settings),
    )
