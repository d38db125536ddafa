"""Where messages go: a Slack incoming webhook, a Slack bot (threads, edits), or the console."""

from __future__ import annotations

import logging
import sys
import threading
from dataclasses import dataclass
from typing import Protocol, TextIO

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.webhook import WebhookClient

from backup_monitor.messages import Message, console_text
from backup_monitor.records import ThreadRef

logger = logging.getLogger(__name__)

SLACK_TIMEOUT_SECONDS = 10
PERMANENT_ERRORS = frozenset(
    {
        "invalid_auth",
        "invalid_token",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "no_service",
        "no_team",
        "team_disabled",
        "channel_is_archived",
        "action_prohibited",
        "posting_to_general_channel_denied",
        "missing_scope",
        "invalid_payload",
        "invalid_blocks",
    }
)


class DeliveryError(Exception):
    """A message was not accepted. `permanent`: retrying this check would not help (bad token, no channel)."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the notifier says about an accepted message: where it landed, for threads."""

    thread: ThreadRef | None = None


class Notifier(Protocol):
    """Sends one message; raises DeliveryError when it is not accepted."""

    name: str

    def send(self, message: Message) -> Delivery: ...


def retry_handlers(max_retries: int = 2) -> list[RetryHandler]:
    """slack-sdk's own handlers: connection errors, rate limits (Retry-After), server errors."""
    return [
        ConnectionErrorRetryHandler(max_retry_count=max_retries),
        RateLimitErrorRetryHandler(max_retry_count=max_retries),
        ServerErrorRetryHandler(max_retry_count=max_retries),
    ]


class ConsoleNotifier:
    """Readable text on standard output: the default, the demo and `--dry-run`."""

    name = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, message: Message) -> Delivery:
        text = console_text(message)
        prefix = "  (in thread) " if message.thread else ""
        with self._lock:
            print(f"{prefix}{text}\n", file=self._stream or sys.stdout, flush=True)
        return Delivery()


class WebhookNotifier:
    """A Slack incoming webhook: one channel, no threads."""

    name = "slack-webhook"

    def __init__(self, url: str, timeout: int = SLACK_TIMEOUT_SECONDS) -> None:
        self._client = WebhookClient(url, timeout=timeout, retry_handlers=retry_handlers())

    def __repr__(self) -> str:
        return "WebhookNotifier(url=<secret>)"

    def send(self, message: Message) -> Delivery:
        try:
            response = self._client.send(text=message.text, blocks=message.blocks, unfurl_links=False)
        except (SlackClientError, OSError) as exc:
            raise DeliveryError(f"Slack webhook unreachable ({type(exc).__name__})", permanent=False) from None
        if response.status_code == 200:
            return Delivery()
        body = (response.body or "").strip()[:80]
        permanent = response.status_code in (400, 403, 404, 410) and body in PERMANENT_ERRORS | {"invalid_payload"}
        raise DeliveryError(f"Slack webhook answered {response.status_code} {body}", permanent=permanent)


class BotNotifier:
    """A Slack bot token: incidents get a thread; reminders and resolution reply there; resolution edits."""

    name = "slack-bot"

    def __init__(self, token: str, channel: str, base_url: str | None = None, timeout: int = SLACK_TIMEOUT_SECONDS):
        self._client = WebClient(
            token=token, base_url=base_url or WebClient.BASE_URL, timeout=timeout, retry_handlers=retry_handlers()
        )
        self._channel = channel

    def __repr__(self) -> str:
        return f"BotNotifier(channel={self._channel!r})"

    def send(self, message: Message) -> Delivery:
        thread = message.thread
        channel = thread.channel if thread else self._channel
        try:
            response = self._client.chat_postMessage(
                channel=channel,
                text=message.text,
                blocks=message.blocks,
                thread_ts=thread.ts if thread else None,
                unfurl_links=False,
            )
            if message.edit is not None:
                self._edit(message)
        except SlackApiError as exc:
            error = str(exc.response.get("error", "unknown_error"))
            raise DeliveryError(f"Slack answered {error}", permanent=error in PERMANENT_ERRORS) from None
        except (SlackClientError, OSError) as exc:
            raise DeliveryError(f"Slack unreachable ({type(exc).__name__})", permanent=False) from None
        if thread is not None:
            return Delivery(thread)
        return Delivery(ThreadRef(str(response.get("channel") or channel), str(response.get("ts"))))

    def _edit(self, message: Message) -> None:
        edit = message.edit
        assert edit is not None
        try:
            self._client.chat_update(
                channel=edit.channel,
                ts=edit.ts,
                text=message.edit_text or message.text,
                blocks=[
                    {
                        "type": "section",
                        "text": {
                            "type": "mrkdwn",
                            "text": f":white_check_mark: ~{message.edit_text}~ (resolved, see thread)",
                        },
                    }
                ],
            )
        except SlackApiError as exc:
            # The resolution reply was delivered; a failed edit of the first message is not worth a retry.
            logger.warning("could not edit the incident's first message", extra={"error": exc.response.get("error")})
