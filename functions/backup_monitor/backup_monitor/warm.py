"""The Lambda's clients across warm invocations, with secrets that rotate without a redeploy.

Each invocation re-reads the secrets once their cache age has passed (SECRET_MAX_AGE_SECONDS) and rebuilds the
client whose secret changed. When Scalingo refuses the API token at the token exchange, or Slack refuses the
webhook or the bot token, the secret is re-read at once (`force_fetch`) and, if it changed, the client is
rebuilt and the refused call made again: a token corrected in SSM is used without waiting for a cold start.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from backup_monitor.config import ConfigError, Settings
from backup_monitor.messages import Message
from backup_monitor.monitor import Clients
from backup_monitor.notifiers import Delivery, DeliveryError, Notifier
from backup_monitor.records import ThreadRef
from backup_monitor.secrets import SecretReader
from backup_monitor.wiring import (
    build_notifier,
    build_scalingo,
    build_store,
    build_success_notifier,
    resolve_secrets,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Secrets:
    api_token: str | None
    webhook_url: str | None
    bot_token: str | None
    success_webhook_url: str | None = None

    @classmethod
    def of(cls, settings: Settings) -> _Secrets:
        return cls(
            settings.api_token, settings.slack_webhook_url, settings.slack_bot_token, settings.slack_success_webhook_url
        )


class WarmClients:
    """Settings and clients kept by a warm container; `current()` before each check."""

    def __init__(self, base: Settings, reader: SecretReader | None = None) -> None:
        self._base = base
        self._reader = reader or SecretReader()
        self._lock = threading.Lock()
        self._settings = resolve_secrets(base, self._reader)
        self._notifier = build_notifier(self._settings)
        self._clients = Clients(
            scalingo=build_scalingo(self._settings, self._renew_api_token),
            store=build_store(self._settings),
            notifier=_RenewingNotifier(self),
            success_notifier=build_success_notifier(self._settings),
        )

    def __repr__(self) -> str:
        return f"WarmClients(notifier={self._notifier.name!r})"

    def current(self) -> tuple[Settings, Clients]:
        """The settings with secrets read within their cache age; a client is rebuilt if its secret changed."""
        fresh = resolve_secrets(self._base, self._reader)
        with self._lock:
            self._adopt(fresh)
            return self._settings, self._clients

    @property
    def notifier(self) -> Notifier:
        return self._notifier

    def _adopt(self, fresh: Settings) -> bool:
        """Use `fresh`'s secrets; True when one changed. Called with the lock held."""
        old, new = _Secrets.of(self._settings), _Secrets.of(fresh)
        if old == new:
            return False
        if old.api_token != new.api_token:
            logger.info("the Scalingo API token changed in SSM: new Scalingo client")
            self._clients.scalingo = build_scalingo(fresh, self._renew_api_token)
        if (old.webhook_url, old.bot_token) != (new.webhook_url, new.bot_token):
            logger.info("the Slack credentials changed in SSM: new Slack client")
            self._notifier = build_notifier(fresh)
        if (old.success_webhook_url, old.bot_token) != (new.success_webhook_url, new.bot_token):
            self._clients.success_notifier = build_success_notifier(fresh)
        self._settings = fresh
        return True

    def _reread(self, parameter: str | None, variable: str) -> str | None:
        """The parameter read from SSM now (rate-limited by the reader); None when it cannot be read."""
        if not parameter:
            return None
        try:
            return self._reader.read(parameter, variable, force=True)
        except ConfigError as exc:
            logger.warning("could not re-read a refused secret", extra={"error": str(exc)})
            return None

    def _renew_api_token(self) -> str | None:
        """Called by the Scalingo client when the token exchange is refused: a different token, or None."""
        token = self._reread(self._base.api_token_parameter, self._base.api_token_variable)
        with self._lock:
            if token is None or token == self._settings.api_token:
                return None
            logger.info("Scalingo refused the API token; using the one just re-read from SSM")
            # The client that asked switches to the token itself; only the settings follow here.
            self._settings = self._settings.with_secrets(token, None, None)
            return token

    def renew_slack(self) -> bool:
        """Called when Slack refused the credentials: re-read them; True when they changed (new notifier)."""
        base = self._base
        webhook = self._reread(base.slack_webhook_url_parameter, "SLACK_WEBHOOK_URL_PARAMETER")
        bot = self._reread(base.slack_bot_token_parameter, "SLACK_BOT_TOKEN_PARAMETER")
        with self._lock:
            fresh = self._settings.with_secrets(None, webhook, bot)
            if (fresh.slack_webhook_url, fresh.slack_bot_token) == (
                self._settings.slack_webhook_url,
                self._settings.slack_bot_token,
            ):
                return False
            return self._adopt(fresh)


class WarmShards:
    """The warm clients of each shard (SCALINGO_API_TOKEN_PARAMETERS) this container has checked: each its own
    Scalingo client (token, bearer, limiter) and store, built at the shard's first invocation; one secret
    cache. A rotated token is picked up per shard, as with one token (WarmClients)."""

    def __init__(self, base: Settings, reader: SecretReader | None = None) -> None:
        self._base = base
        self._reader = reader or SecretReader()
        self._lock = threading.Lock()
        self._warm: dict[str, WarmClients] = {}

    def __repr__(self) -> str:
        return f"WarmShards(shards={sorted(self._warm)})"

    def current(self, shard: str) -> tuple[Settings, Clients]:
        """The shard's settings and clients (by id or parameter name); UnknownShardError for no such shard."""
        settings = self._base.for_shard(shard)
        with self._lock:
            warm = self._warm.get(settings.shard)
            if warm is None:
                warm = self._warm[settings.shard] = WarmClients(settings, self._reader)
        return warm.current()


class _RenewingNotifier:
    """The current notifier of a WarmClients; a message refused for its credentials is sent again once, after
    the credentials were re-read from SSM, if they changed."""

    def __init__(self, owner: WarmClients) -> None:
        self._owner = owner
        self.name = owner.notifier.name  # webhook or bot is fixed by the deployment

    def __repr__(self) -> str:
        return f"_RenewingNotifier({self._owner.notifier!r})"

    def __getattr__(self, name: str) -> Any:
        """The current notifier's optional attributes (`destination`, `pace_seconds`, `pacer`, `channel_of`,
        `set_deadline`, `permalink`): the check reads them from whatever notifier it is given."""
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._owner.notifier, name)

    def send(self, message: Message) -> Delivery:
        try:
            return self._owner.notifier.send(message)
        except DeliveryError as exc:
            if not exc.permanent or not self._owner.renew_slack():
                raise
        return self._owner.notifier.send(message)

    def edit(self, target: ThreadRef, edit_text: str) -> None:
        try:
            self._owner.notifier.edit(target, edit_text)
        except DeliveryError as exc:
            if not exc.permanent or not self._owner.renew_slack():
                raise
            self._owner.notifier.edit(target, edit_text)
